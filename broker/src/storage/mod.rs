//! Storage: the single-node log engine.
//!
//! Storage owns the bytes on disk: for every partition an append-only log of Kafka
//! RecordBatch v2 batches, the sparse indexes over it, the checkpoints that say how much of
//! it is known to be flushed, and the topic metadata. It never sees a request type or a
//! socket; replication and the server build on it.
//!
//! # Layout
//!
//! ```text
//! <data_dir>/
//!   .clean-shutdown                  written last by LogManager::shutdown, deleted by open
//!   replication-offset-checkpoint    every hosted partition's high watermark (Kafka's format)
//!   recovery-point-offset-checkpoint every hosted partition's recovery point: below it log
//!                                    and indexes are flushed (Kafka's format)
//!   log-start-offset-checkpoint      every hosted partition's first retained offset
//!   topics/<topic>.toml              one metadata file per topic (name, id, partitions, overrides)
//!   <topic>-<partition>.<hex>-delete/  a partition directory being removed (see `deleter`)
//!   <topic>-<partition>/             only for partitions this broker hosts
//!     00000000000000000000.log       batches back to back, exactly as received (offsets stamped)
//!     00000000000000000000.index     sparse: 4-byte relative offset -> 4-byte file position
//!     00000000000000000000.timeindex sparse: 8-byte timestamp -> 4-byte relative offset
//!     leader-epoch-checkpoint        leader epoch -> first offset it wrote (Kafka's format)
//!     recovery-point-checkpoint, log-start-offset-checkpoint, high-watermark-checkpoint
//!                                    (read only: an older version's per-partition files,
//!                                    used when the data directory's files lack the partition)
//! ```
//!
//! # Modules, one noun each
//!
//! - [`fs`]: the file-system boundary ([`FileSystem`], [`StorageFile`]); everything below
//!   reaches the disk only through it, so a simulated file system can stand in for it.
//! - `index`: a segment's offset index and time index.
//! - `handles`: [`IndexHandleLimit`], a file-system wrapper that keeps at most a few
//!   thousand index descriptors open, so a broker holds about one descriptor per partition.
//! - `segment`: one segment's three files; `ActiveSegment` (appends) vs `SealedSegment`
//!   (read-only) as types.
//! - `log`: [`PartitionLog`], the ordered segments of one partition: append (as leader or
//!   follower), read, roll, retention, truncation, group-commit fsync, poisoning.
//! - `epoch_cache`: which leader epoch wrote which offsets (KIP-101/279), and its
//!   checkpoint.
//! - `recovery`: opening a partition's segments after a clean or unclean shutdown.
//! - `checkpoint`: small files written atomically (temp file, fsync, rename, fsync dir).
//! - `dir_checkpoints`: the data directory's recovery-point and log-start files, written
//!   for every partition at once, and what they may claim between writes.
//! - `deleter`: removing partition directories crash-safely (rename to `-delete`, then
//!   delete in the background).
//! - `manager`: [`LogManager`], the partitions hosted here, and topic metadata.
//! - `cleaner`: log compaction (Kafka's log cleaner): the cleanup-policy configs, the
//!   offset map, rewriting segments and swapping them in crash-safely.
//!
//! # Invariants
//!
//! - Offsets are contiguous: each batch's baseOffset is the previous batch's last offset + 1,
//!   within a segment and across segments (a segment's base offset is the next offset of the
//!   segment before it). Append asserts it; recovery treats a gap as corruption. The one
//!   exception is a compacted log (`cleanup.policy` with `compact`): the cleaner removes
//!   records and batches, leaving gaps inside sealed segments (offsets still only grow, each
//!   segment still ends where the next begins, batches keep their last offset).
//! - Nothing malformed reaches the files: append re-validates every batch (length, magic,
//!   CRC-32C, record count) with `sluice_protocol::batch::validate` although the server
//!   already did.
//! - `log_start_offset <= log_end_offset`, and only whole segments are removed.
//! - The active segment is never deleted by retention.
//! - A failed fsync (or any failed write) poisons the partition's log: it refuses writes until
//!   the broker restarts and recovery decides what the disk really holds. Retrying an fsync
//!   after a failure can report success for data the kernel already dropped. The first
//!   poisoning marks the data directory failed ([`DirHealth`], [`LogManager::dir_failed`]),
//!   which halts the broker (`node.rs`).
//! - The clean-shutdown marker exists on disk only while no log is open for writing.
//! - Leader epochs never go back along a log; the epoch checkpoint on disk may be ahead of
//!   the durable batches but never behind them.
//! - A truncation is durable before it returns; a crash during one leaves the old log or a
//!   prefix of it, never a log with a hole.
//! - A crash during a compaction pass leaves each segment either as it was or as cleaned.
//!
//! # Metrics
//!
//! Storage counts its own work through the `metrics` facade (names in `crate::metrics`;
//! without an installed recorder, as in tests, they cost a no-op): bytes appended, flushes
//! of segment data and their duration (one per group-commit fsync or flush; checkpoint,
//! directory and truncation fsyncs are not flushes), bytes cut by recovery and the time
//! opening the logs took, segments and bytes deleted by retention, compaction passes and
//! the bytes they read and wrote. The size gauges are read from [`LogManager::usage`] and
//! [`PartitionLog`] by the replica manager.
//!
//! # Left out on purpose
//!
//! The log cleaner's background thread, its scheduling and throttle (storage has the pass,
//! [`PartitionLog::clean`], and [`LogManager::clean_pass`]); transactions (producer state
//! snapshots) belong to later layers. Storage persists the high watermark but does not
//! own it: replication decides it (and should bound retention and cleaning by it). Files
//! are not memory-mapped: indexes are searched with `pread`, which a simulated file system
//! can provide and mmap cannot.

mod checkpoint;
mod cleaner;
mod deleter;
mod dir_checkpoints;
mod dir_health;
mod epoch_cache;
mod fs;
mod handles;
mod index;
mod log;
mod manager;
#[cfg(any(test, feature = "fault-fs"))]
mod power_loss;
mod recovery;
mod segment;
#[cfg(test)]
pub(crate) mod testing;

use std::fmt;
use std::str::FromStr;

pub use cleaner::{
    CleanLimits, CleanStats, CleanerConfig, CleanupPolicy, DirtyRatio, OFFSET_MAP_BYTES_MAX,
};
pub use dir_health::DirHealth;
pub use epoch_cache::{EpochEndOffset, EpochEntry};
pub use fs::{FaultInjectingFileSystem, FileSystem, StdFileSystem, StorageFile};
pub use handles::{IndexHandleLimit, INDEX_HANDLES_OPEN_MAX};
pub use log::{AppendInfo, PartitionLog};
pub use manager::{
    apply_changes, apply_config_changes, check_broker_configs, check_config_change,
    effective_broker_configs, topic_synonym, validate_topic_name, CleanPassStats, ConfigChange,
    ConfigEntry, LogManager, LogUsage, TopicInfo, DYNAMIC_LOG_CONFIGS, FOLLOWER_THROTTLE_RATE,
    LEADER_THROTTLE_RATE, SUPPORTED_TOPIC_CONFIGS, TOPIC_PARTITIONS_MAX,
};
#[cfg(any(test, feature = "fault-fs"))]
pub use power_loss::{PowerLoss, PowerLossFileSystem};
pub use recovery::{RecoveryReport, ShutdownState};
pub use segment::TimestampMatch;

/// A timestamp field that carries no timestamp (Kafka's `RecordBatch.NO_TIMESTAMP`).
pub const NO_TIMESTAMP: i64 = -1;

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// When an appended batch counts as safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Acknowledge from the page cache; safety comes from replication (Kafka's default).
    /// Logs are flushed on segment roll and on shutdown.
    Replicated,
    /// Group-commit fsync before a batch counts as written (Redpanda's default).
    Fsync,
}

impl Durability {
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Replicated => "replicated",
            Durability::Fsync => "fsync",
        }
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Durability {
    type Err = StorageError;

    /// Parse `replicated` or `fsync` (case-insensitive).
    fn from_str(s: &str) -> Result<Durability, StorageError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "replicated" => Ok(Durability::Replicated),
            "fsync" => Ok(Durability::Fsync),
            _ => Err(StorageError::InvalidConfig(format!(
                "durability: expected \"replicated\" or \"fsync\", got {s:?}"
            ))),
        }
    }
}

/// How one partition's log behaves. The broker's defaults, overridden per topic with Kafka's
/// config names (see [`LogManager::create_topic`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Roll the active segment before it would exceed this many bytes (Kafka `segment.bytes`).
    /// A batch larger than this still gets a segment of its own.
    pub segment_bytes_max: u64,
    /// Roll the active segment once it is this old (Kafka `segment.ms`).
    pub segment_ms_max: u64,
    /// Bytes appended between two sparse index entries (Kafka `index.interval.bytes`).
    pub index_interval_bytes: u32,
    /// Delete sealed segments whose newest record is older than this; `None` keeps them
    /// forever (Kafka `retention.ms` = -1).
    pub retention_ms: Option<u64>,
    /// Delete the oldest sealed segments while the log would stay at least this big; `None`
    /// means no size limit (Kafka `retention.bytes` = -1).
    pub retention_bytes: Option<u64>,
    /// Largest batch a producer may send (Kafka `max.message.bytes`). Enforced by the server
    /// before append; storage does not refuse larger batches so that a follower can always
    /// copy what its leader accepted.
    pub batch_bytes_max: usize,
    pub durability: Durability,
    /// Compaction and the cleanup policy (see `cleaner`).
    pub cleaner: CleanerConfig,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            segment_bytes_max: 1 << 30,
            segment_ms_max: 7 * DAY_MS,
            index_interval_bytes: 4096,
            retention_ms: Some(7 * DAY_MS),
            retention_bytes: None,
            batch_bytes_max: (1 << 20) + 12,
            durability: Durability::Replicated,
            cleaner: CleanerConfig::default(),
        }
    }
}

/// What went wrong in storage, shaped by what the caller does next.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The offset is outside `[log_start_offset, log_end_offset]`: the consumer must reset.
    /// Also: a follower append that does not start at the log end offset (fetch again from
    /// `log_end_offset`), a durability wait whose offset was truncated away, or a
    /// truncation target the operation cannot take (the docs of each say which).
    #[error("offset {requested} is out of range: the log holds offsets {log_start_offset}..{log_end_offset}")]
    OffsetOutOfRange {
        requested: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    /// A failed fsync or write poisoned the log: it refuses writes until the broker restarts.
    /// Also returned by appends to a log closed by shutdown or by deleting its topic; the
    /// message says which.
    #[error("log refuses writes: {0}")]
    Poisoned(String),
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Bytes on disk are not what storage wrote, or records handed to storage are not a
    /// valid continuation of the log (an invalid batch, a gap in replicated offsets, a
    /// leader epoch going back, a truncation inside a batch): a bug or bad data, never
    /// worth retrying as is.
    #[error("corrupt log data: {0}")]
    Corrupt(String),
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    #[error("topic {topic:?} has no partition {partition}")]
    UnknownPartition { topic: String, partition: i32 },
    #[error("topic {0:?} already exists")]
    TopicAlreadyExists(String),
    /// A topic name that breaks Kafka's rules; the message says which and why.
    #[error("invalid topic name: {0}")]
    InvalidTopic(String),
    #[error("invalid partition count: {0}")]
    InvalidPartitions(String),
    /// An unknown config key or a bad value; the message names the key.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
}

impl StorageError {
    /// Whether the same operation may succeed if retried later (possibly against another
    /// broker): I/O errors may be transient and unknown topics may be metadata in flight.
    /// A poisoned log stays poisoned until restart, so retrying against it is pointless.
    pub fn is_retriable(&self) -> bool {
        match self {
            StorageError::Io(_)
            | StorageError::UnknownTopic(_)
            | StorageError::UnknownPartition { .. } => true,
            StorageError::OffsetOutOfRange { .. }
            | StorageError::Poisoned(_)
            | StorageError::Corrupt(_)
            | StorageError::TopicAlreadyExists(_)
            | StorageError::InvalidTopic(_)
            | StorageError::InvalidPartitions(_)
            | StorageError::InvalidConfig(_) => false,
        }
    }
}

impl From<sluice_protocol::error::ProtocolError> for StorageError {
    fn from(error: sluice_protocol::error::ProtocolError) -> StorageError {
        StorageError::Corrupt(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durability_parses_and_displays_both_modes() {
        assert_eq!(
            "replicated".parse::<Durability>().unwrap(),
            Durability::Replicated
        );
        assert_eq!("FSYNC".parse::<Durability>().unwrap(), Durability::Fsync);
        assert_eq!(Durability::Fsync.to_string(), "fsync");
        let error = "sometimes".parse::<Durability>().unwrap_err();
        assert!(error.to_string().contains("durability"), "{error}");
    }

    #[test]
    fn retriable_errors_are_the_transient_ones() {
        assert!(StorageError::Io(std::io::Error::other("disk")).is_retriable());
        assert!(StorageError::UnknownTopic("t".into()).is_retriable());
        assert!(!StorageError::Poisoned("fsync failed".into()).is_retriable());
        assert!(!StorageError::InvalidConfig("retention.ms".into()).is_retriable());
    }
}
