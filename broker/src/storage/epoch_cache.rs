//! The leader-epoch cache of one partition: which leader epoch wrote which offsets
//! (Kafka's `LeaderEpochFileCache`, KIP-101/279).
//!
//! Every batch carries the epoch of the leader that appended it (`partitionLeaderEpoch`).
//! Epochs only grow along the log, so the whole assignment is described by the offsets where
//! the epoch changes: a list of `(epoch, start offset)` entries, epoch `e` owning the offsets
//! from its start to the next entry's start (the last one: to the log end offset). Replicas
//! compare these lists to find where their logs diverge: a follower asks the leader for the
//! end offset of its latest epoch ([`EpochCache::end_offset_for`]) and truncates what lies
//! past it.
//!
//! # Invariants
//! - Entries are strictly increasing in both epoch and start offset; epochs are `>= 0`.
//!   [`EpochCache::assign`] refuses anything else: an epoch going backwards is a bug in the
//!   caller (a deposed leader appending, or a follower appending data that diverges from its
//!   log without truncating first), never something to paper over.
//! - Against the log it describes: every batch at or past the first entry's start has the
//!   epoch of the last entry whose start is at or before the batch's base offset, and no
//!   entry starts at or past the log end offset unless it owns no records yet (a leader
//!   records its epoch when it takes over, before its first append).
//! - On disk (`leader-epoch-checkpoint`) the cache may be *ahead* of the log's durable data
//!   (an entry written just before a crash lost the batches it describes) but never behind
//!   it: every change is written before the data it describes (appends) or after the data it
//!   removes is durably gone (truncation). Opening a log therefore drops entries at or past
//!   the recovered log end offset and re-checks the entries against the batches that
//!   recovery scanned (see `PartitionLog::open`).
//!
//! # File format
//! Kafka's text checkpoint: a version line `0`, a count line, then one `epoch start_offset`
//! line per entry. A file that is missing or cannot be parsed (wrong version, count, order)
//! is not trusted: the cache is **rebuilt from the batch headers** of the whole log (one
//! 61-byte header read per batch), never guessed. Written with the atomic checkpoint writer
//! (temp file, fsync, rename, directory fsync).
//!
//! The cache holds one entry per leader change that wrote data, so it grows with leader
//! elections, not with data; retention trims it from the front
//! ([`EpochCache::truncate_from_start`]).

use std::path::Path;

use super::checkpoint::{self, TEMP_SUFFIX};
use super::fs::FileSystem;

/// The partition directory's leader-epoch checkpoint.
pub(super) const LEADER_EPOCH_FILE: &str = "leader-epoch-checkpoint";

const EPOCH_CHECKPOINT_VERSION: &str = "0";

/// One leader epoch and the first offset it wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// The answer to "where does epoch `e` end?" (OffsetsForLeaderEpoch): the largest known
/// epoch `<= e` and the offset one past its last record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEndOffset {
    pub epoch: i32,
    pub end_offset: i64,
}

/// Why [`EpochCache::assign`] refused an entry. Always a caller bug or data that diverges
/// from the log: the message says which epochs collided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EpochRegression(pub String);

/// The epoch -> start offset entries of one partition. Pure data; see the module
/// documentation. Persisting is the caller's job ([`persist`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpochCache {
    entries: Vec<EpochEntry>,
}

impl EpochCache {
    /// A cache holding `entries`, which must satisfy the invariants.
    pub fn from_entries(entries: Vec<EpochEntry>) -> Result<EpochCache, EpochRegression> {
        let mut cache = EpochCache::default();
        for entry in entries {
            let latest = cache.latest();
            if latest.is_some_and(|latest| {
                entry.epoch <= latest.epoch || entry.start_offset <= latest.start_offset
            }) || entry.epoch < 0
                || entry.start_offset < 0
            {
                return Err(EpochRegression(format!(
                    "entry {entry:?} does not follow {latest:?}: epochs and start offsets must strictly increase"
                )));
            }
            cache.entries.push(entry);
        }
        Ok(cache)
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.latest().map(|entry| entry.epoch)
    }

    /// The entry owning `offset`: the last one starting at or before it.
    pub fn entry_for_offset(&self, offset: i64) -> Option<EpochEntry> {
        let after = self
            .entries
            .partition_point(|entry| entry.start_offset <= offset);
        after.checked_sub(1).map(|index| self.entries[index])
    }

    /// Record that `epoch` starts at `start_offset` (the log end offset when its first batch
    /// is appended, or when a replica becomes its leader). Returns whether the cache changed.
    ///
    /// - `epoch` is already the latest: nothing to do if `start_offset` is at or past its
    ///   start (later batches of the same epoch); an earlier start is refused.
    /// - `epoch` is newer: appended if `start_offset` is past the latest entry's start. If
    ///   it is equal, the latest epoch owns no records (callers assign at the log end
    ///   offset), so it is replaced, as Kafka does.
    /// - `epoch` is older than the latest, negative, or `start_offset` goes backwards or is
    ///   negative: refused.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> Result<bool, EpochRegression> {
        if epoch < 0 || start_offset < 0 {
            return Err(EpochRegression(format!(
                "leader epoch {epoch} at offset {start_offset}: both must be >= 0"
            )));
        }
        let Some(latest) = self.latest() else {
            self.entries.push(EpochEntry {
                epoch,
                start_offset,
            });
            return Ok(true);
        };
        if epoch == latest.epoch && start_offset >= latest.start_offset {
            return Ok(false);
        }
        if epoch > latest.epoch && start_offset >= latest.start_offset {
            if start_offset == latest.start_offset {
                self.entries.pop();
            }
            self.entries.push(EpochEntry {
                epoch,
                start_offset,
            });
            return Ok(true);
        }
        Err(EpochRegression(format!(
            "leader epoch {epoch} starting at offset {start_offset} would go back: the latest is epoch {} from offset {}",
            latest.epoch, latest.start_offset
        )))
    }

    /// Kafka's `LeaderEpochFileCache.endOffsetFor`: where `requested_epoch` ends, given the
    /// log end offset. `None` is Kafka's `(UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)`.
    ///
    /// - `requested_epoch` is undefined (negative), or newer than every known epoch (which
    ///   includes an empty cache): `None`.
    /// - It is the latest epoch: `(requested_epoch, log_end_offset)`; the epoch is still
    ///   being written.
    /// - Otherwise the answer belongs to the largest known epoch `<= requested_epoch`, and
    ///   it ends where the next known epoch starts. If every known epoch is newer (the
    ///   requested one was removed from the front by retention), the answer is
    ///   `(requested_epoch, first known start offset)`: the requester must not keep
    ///   anything the log no longer holds.
    pub fn end_offset_for(
        &self,
        requested_epoch: i32,
        log_end_offset: i64,
    ) -> Option<EpochEndOffset> {
        if requested_epoch < 0 {
            return None;
        }
        let latest = self.latest()?;
        if requested_epoch == latest.epoch {
            return Some(EpochEndOffset {
                epoch: requested_epoch,
                end_offset: log_end_offset,
            });
        }
        let higher = self
            .entries
            .partition_point(|entry| entry.epoch <= requested_epoch);
        let next = self.entries.get(higher)?;
        let epoch = match higher.checked_sub(1) {
            Some(floor) => self.entries[floor].epoch,
            None => requested_epoch,
        };
        Some(EpochEndOffset {
            epoch,
            end_offset: next.start_offset,
        })
    }

    /// Drop every entry starting at or past `end_offset` (the log was truncated there).
    /// Returns whether the cache changed.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let keep = self
            .entries
            .partition_point(|entry| entry.start_offset < end_offset);
        let changed = keep < self.entries.len();
        self.entries.truncate(keep);
        changed
    }

    /// Forget offsets below `start_offset` (retention moved the log start there): entries
    /// starting at or before it collapse into the last of them, moved to start at
    /// `start_offset`. Returns whether the cache changed.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let at_or_before = self
            .entries
            .partition_point(|entry| entry.start_offset <= start_offset);
        let Some(last_removed) = at_or_before.checked_sub(1) else {
            return false;
        };
        let kept = EpochEntry {
            epoch: self.entries[last_removed].epoch,
            start_offset,
        };
        let changed = last_removed > 0 || self.entries[0].start_offset != start_offset;
        self.entries.drain(..last_removed);
        self.entries[0] = kept;
        changed
    }

    fn encode(&self) -> String {
        let mut text = format!("{EPOCH_CHECKPOINT_VERSION}\n{}\n", self.entries.len());
        for entry in &self.entries {
            text.push_str(&format!("{} {}\n", entry.epoch, entry.start_offset));
        }
        text
    }

    fn decode(bytes: &[u8]) -> Result<EpochCache, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
        let mut lines = text.lines();
        if lines.next() != Some(EPOCH_CHECKPOINT_VERSION) {
            return Err("unknown version".into());
        }
        let count: usize = lines
            .next()
            .and_then(|line| line.trim().parse().ok())
            .ok_or("no entry count")?;
        let mut entries = Vec::new();
        for line in lines {
            let mut fields = line.split_whitespace();
            let (Some(epoch), Some(start_offset), None) =
                (fields.next(), fields.next(), fields.next())
            else {
                return Err(format!("malformed entry line {line:?}"));
            };
            let epoch = epoch
                .parse()
                .map_err(|_| format!("malformed epoch in {line:?}"))?;
            let start_offset = start_offset
                .parse()
                .map_err(|_| format!("malformed start offset in {line:?}"))?;
            entries.push(EpochEntry {
                epoch,
                start_offset,
            });
        }
        if entries.len() != count {
            return Err(format!("says {count} entries but holds {}", entries.len()));
        }
        EpochCache::from_entries(entries).map_err(|error| error.0)
    }
}

/// The cache stored in `dir`, or `None` if the file is missing or not a valid checkpoint
/// (logged): the caller then rebuilds it from the log.
pub(super) fn load(fs: &dyn FileSystem, dir: &Path) -> std::io::Result<Option<EpochCache>> {
    let path = dir.join(LEADER_EPOCH_FILE);
    let Some(bytes) = checkpoint::read_all(fs, &path)? else {
        return Ok(None);
    };
    match EpochCache::decode(&bytes) {
        Ok(cache) => Ok(Some(cache)),
        Err(why) => {
            tracing::warn!(path = %path.display(), %why, "ignoring unreadable leader-epoch checkpoint; rebuilding it from the log");
            Ok(None)
        }
    }
}

/// Write `cache` to `dir` atomically and durably.
pub(super) fn persist(fs: &dyn FileSystem, dir: &Path, cache: &EpochCache) -> std::io::Result<()> {
    checkpoint::write_atomic(
        fs,
        dir,
        LEADER_EPOCH_FILE,
        &format!("{LEADER_EPOCH_FILE}{TEMP_SUFFIX}"),
        cache.encode().as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::fs::StdFileSystem;

    fn cache(entries: &[(i32, i64)]) -> EpochCache {
        EpochCache::from_entries(
            entries
                .iter()
                .map(|&(epoch, start_offset)| EpochEntry {
                    epoch,
                    start_offset,
                })
                .collect(),
        )
        .unwrap()
    }

    fn pairs(cache: &EpochCache) -> Vec<(i32, i64)> {
        cache
            .entries()
            .iter()
            .map(|entry| (entry.epoch, entry.start_offset))
            .collect()
    }

    fn end(epoch: i32, end_offset: i64) -> Option<EpochEndOffset> {
        Some(EpochEndOffset { epoch, end_offset })
    }

    #[test]
    fn assign_appends_new_epochs_and_ignores_the_latest_one() {
        let mut epochs = EpochCache::default();
        assert_eq!(epochs.latest_epoch(), None);
        assert_eq!(epochs.assign(2, 0), Ok(true));
        assert_eq!(epochs.assign(2, 10), Ok(false), "same epoch, later batch");
        assert_eq!(epochs.assign(5, 10), Ok(true));
        assert_eq!(epochs.latest_epoch(), Some(5));
        assert_eq!(pairs(&epochs), vec![(2, 0), (5, 10)]);
    }

    #[test]
    fn assign_refuses_epochs_and_offsets_that_go_back() {
        let mut epochs = cache(&[(2, 0), (5, 10)]);
        let before = epochs.clone();
        assert!(epochs.assign(4, 20).is_err(), "older epoch");
        assert!(epochs.assign(6, 9).is_err(), "newer epoch, earlier start");
        assert!(epochs.assign(5, 9).is_err(), "latest epoch, earlier start");
        assert!(epochs.assign(-1, 20).is_err(), "undefined epoch");
        assert!(epochs.assign(7, -1).is_err(), "negative offset");
        assert_eq!(epochs, before, "a refused assign changes nothing");
    }

    #[test]
    fn assign_replaces_a_latest_epoch_that_owns_no_records() {
        // Epoch 5 was recorded at offset 10 on taking over, then epoch 6 took over with the
        // log still ending at 10: epoch 5 wrote nothing.
        let mut epochs = cache(&[(2, 0), (5, 10)]);
        assert_eq!(epochs.assign(6, 10), Ok(true));
        assert_eq!(pairs(&epochs), vec![(2, 0), (6, 10)]);
    }

    #[test]
    fn end_offset_for_follows_kafkas_end_offset_for() {
        let epochs = cache(&[(1, 0), (3, 100), (6, 250)]);
        let log_end_offset = 300;
        // The latest epoch is still being written: it ends at the log end offset.
        assert_eq!(epochs.end_offset_for(6, log_end_offset), end(6, 300));
        // A known older epoch ends where the next one starts.
        assert_eq!(epochs.end_offset_for(1, log_end_offset), end(1, 100));
        assert_eq!(epochs.end_offset_for(3, log_end_offset), end(3, 250));
        // An unknown epoch between known ones: the largest known epoch below it.
        assert_eq!(epochs.end_offset_for(2, log_end_offset), end(1, 100));
        assert_eq!(epochs.end_offset_for(5, log_end_offset), end(3, 250));
        // Older than everything known: the requested epoch, ending where the log's first
        // known epoch starts.
        assert_eq!(cache(&[(4, 50), (6, 80)]).end_offset_for(2, 90), end(2, 50));
        // Newer than everything known, undefined, or nothing known: undefined.
        assert_eq!(epochs.end_offset_for(7, log_end_offset), None);
        assert_eq!(epochs.end_offset_for(-1, log_end_offset), None);
        assert_eq!(EpochCache::default().end_offset_for(0, 0), None);
    }

    #[test]
    fn truncate_from_end_drops_entries_at_or_past_the_offset() {
        let mut epochs = cache(&[(1, 0), (3, 100), (6, 250)]);
        assert!(
            !epochs.truncate_from_end(251),
            "nothing starts at or past 251"
        );
        assert!(epochs.truncate_from_end(250));
        assert_eq!(pairs(&epochs), vec![(1, 0), (3, 100)]);
        assert!(epochs.truncate_from_end(50));
        assert_eq!(pairs(&epochs), vec![(1, 0)]);
        assert!(epochs.truncate_from_end(0));
        assert!(epochs.is_empty());
    }

    #[test]
    fn truncate_from_start_clamps_the_first_entry_to_the_log_start() {
        let mut epochs = cache(&[(1, 0), (3, 100), (6, 250)]);
        assert!(!epochs.truncate_from_start(0));
        assert!(epochs.truncate_from_start(120));
        assert_eq!(pairs(&epochs), vec![(3, 120), (6, 250)]);
        assert!(epochs.truncate_from_start(250));
        assert_eq!(pairs(&epochs), vec![(6, 250)]);
        assert!(!epochs.truncate_from_start(250));
        assert!(epochs.truncate_from_start(400));
        assert_eq!(pairs(&epochs), vec![(6, 400)]);
        // Older offsets still answer for the epochs that remain.
        assert_eq!(epochs.end_offset_for(3, 500), end(3, 400));
    }

    #[test]
    fn entry_for_offset_finds_the_owning_epoch() {
        let epochs = cache(&[(1, 10), (3, 100)]);
        assert_eq!(epochs.entry_for_offset(9), None);
        assert_eq!(epochs.entry_for_offset(10).unwrap().epoch, 1);
        assert_eq!(epochs.entry_for_offset(99).unwrap().epoch, 1);
        assert_eq!(epochs.entry_for_offset(100).unwrap().epoch, 3);
    }

    #[test]
    fn checkpoint_round_trips_in_kafkas_format() {
        let dir = tempfile::tempdir().unwrap();
        let fs = StdFileSystem;
        assert_eq!(load(&fs, dir.path()).unwrap(), None);
        let epochs = cache(&[(0, 0), (4, 17)]);
        persist(&fs, dir.path(), &epochs).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join(LEADER_EPOCH_FILE)).unwrap(),
            "0\n2\n0 0\n4 17\n"
        );
        assert_eq!(load(&fs, dir.path()).unwrap(), Some(epochs));
        persist(&fs, dir.path(), &EpochCache::default()).unwrap();
        assert_eq!(load(&fs, dir.path()).unwrap(), Some(EpochCache::default()));
    }

    #[test]
    fn unreadable_checkpoint_loads_as_absent() {
        let dir = tempfile::tempdir().unwrap();
        let fs = StdFileSystem;
        for garbage in [
            "1\n0\n",             // unknown version
            "0\n2\n0 0\n",        // count does not match
            "0\n2\n3 10\n2 20\n", // epochs go back
            "0\n2\n1 10\n2 10\n", // start offsets do not increase
            "0\n1\n1 x\n",        // not a number
            "0\n1\n1 2 3\n",      // extra field
        ] {
            std::fs::write(dir.path().join(LEADER_EPOCH_FILE), garbage).unwrap();
            assert_eq!(load(&fs, dir.path()).unwrap(), None, "{garbage:?}");
        }
    }
}
