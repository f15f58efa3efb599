//! [`LogManager`]: the partition logs this broker hosts in one data directory, and the
//! metadata of their topics.
//!
//! A topic exists exactly when its metadata file `topics/<name>.toml` exists (name, 16-byte
//! id, partition count, explicit config overrides). The file is written atomically (temp
//! file, fsync, rename, fsync dir) *before* any partition directory of the topic is created,
//! and removed *before* they are deleted. A topic has a directory only for the partitions
//! this broker hosts ([`LogManager::open_partition`]); the others have none. So after a
//! crash at any point, partition directories without metadata (or numbered past the
//! topic's count) are leftovers of an unfinished delete, and opening removes them.
//!
//! A partition directory is removed ([`LogManager::remove_partition`], topic deletion) by
//! renaming it to a `-delete` name first and deleting it in the background (see
//! [`deleter`](super::deleter)); `-delete` directories found on open are deleted then.
//!
//! Clean shutdown: [`LogManager::shutdown`] closes every log for writes, flushes it (data,
//! indexes, recovery point) and then writes `.clean-shutdown`. [`LogManager::open`] skips
//! recovery scans when the marker is present and deletes it before anything can be
//! appended, so a later crash is detected.
//!
//! Topic configs use Kafka's names ([`SUPPORTED_TOPIC_CONFIGS`]); an override replaces the
//! broker default given to [`LogManager::open`]. They may be altered later
//! ([`LogManager::alter_topic_configs`]), except `durability`, fixed at creation.
//!
//! Locking: one `RwLock` over the topic map. Lookups (`partition`, `topic`) take it shared;
//! admin operations take it exclusively for their whole duration, file-system work included
//! (they are rare, and this keeps create/delete of the same name serial). It is never held
//! while a partition log's lock is waited on for long: logs are used through their `Arc`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::checkpoint::{self, REPLICATION_OFFSET_FILE, TEMP_SUFFIX};
use super::deleter::{delete_dir_name, is_delete_dir, Deleter};
use super::dir_checkpoints::DirCheckpoints;
use super::dir_health::DirHealth;
use super::fs::{remove_file_if_exists, FileSystem};
use super::log::PartitionLog;
use super::recovery::ShutdownState;
use super::{LogConfig, StorageError};
use crate::metrics as m;

/// Most partitions one topic may have. It bounds the directories one request can create
/// and keeps `<topic>-<partition>` within the 255-byte file-name limit.
pub const TOPIC_PARTITIONS_MAX: i32 = 10_000;

/// A partition by topic name and index.
type PartitionKey = (String, i32);

/// Threads opening partition logs at start (Kafka's `num.recovery.threads.per.data.dir`
/// is 2; opening is mostly waiting on file-system calls, so more overlap well).
const LOG_OPEN_THREADS: usize = 8;

/// Kafka's limit on topic name length.
const TOPIC_NAME_BYTES_MAX: usize = 249;
const TOPICS_DIR: &str = "topics";
const METADATA_SUFFIX: &str = ".toml";
const CLEAN_SHUTDOWN_FILE: &str = ".clean-shutdown";
const METADATA_VERSION: u32 = 1;

/// What the broker knows about a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub id: [u8; 16],
    pub partitions: i32,
    /// Explicit overrides only, with normalised values.
    pub configs: BTreeMap<String, String>,
}

/// What the logs of a [`LogManager`] occupy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogUsage {
    /// Bytes of the segments' log files (indexes not included).
    pub size_bytes: u64,
    pub segments: usize,
}

/// All partition logs in one data directory.
#[derive(Debug)]
pub struct LogManager {
    fs: Arc<dyn FileSystem>,
    data_dir: PathBuf,
    /// The broker's flags.
    static_defaults: TopicSettings,
    /// What topics without an override get: the flags with the dynamic broker configs
    /// applied (see `broker_configs`).
    defaults: RwLock<TopicSettings>,
    topics: RwLock<BTreeMap<String, Topic>>,
    deleter: Deleter,
    /// Every hosted log's recovery point and log start offset, and their two files.
    checkpoints: Arc<DirCheckpoints>,
    /// Marked failed by the first log a write or fsync poisons ([`LogManager::dir_failed`]).
    health: Arc<DirHealth>,
    /// The high watermarks last written to `replication-offset-checkpoint`; the lock also
    /// serialises writes of that file.
    high_watermarks: std::sync::Mutex<BTreeMap<(String, i32), i64>>,
}

#[derive(Debug)]
struct Topic {
    info: TopicInfo,
    settings: TopicSettings,
    /// The partitions hosted here (a directory each), by index.
    partitions: BTreeMap<i32, Arc<PartitionLog>>,
}

/// The on-disk form of a topic's metadata.
#[derive(Debug, Serialize, Deserialize)]
struct MetadataFile {
    version: u32,
    name: String,
    /// 32 hex digits.
    id: String,
    partitions: i32,
    #[serde(default)]
    configs: BTreeMap<String, String>,
}

impl LogManager {
    /// Open the data directory: load topic metadata, remove leftovers of unfinished creates
    /// and deletes, open (recovering as needed) every partition directory, then delete the
    /// clean-shutdown marker.
    pub fn open(
        fs: Arc<dyn FileSystem>,
        data_dir: PathBuf,
        defaults: LogConfig,
    ) -> Result<LogManager, StorageError> {
        let started = Instant::now();
        let defaults = TopicSettings::new(defaults);
        let topics_dir = data_dir.join(TOPICS_DIR);
        fs.create_dir_all(&topics_dir)?;
        let marker = data_dir.join(CLEAN_SHUTDOWN_FILE);
        let shutdown = if fs.exists(&marker)? {
            ShutdownState::Clean
        } else {
            ShutdownState::Unclean
        };

        let mut topics = BTreeMap::new();
        for file_name in fs.list_dir(&topics_dir)? {
            if file_name.ends_with(TEMP_SUFFIX) {
                remove_file_if_exists(&*fs, &topics_dir.join(&file_name))?;
                continue;
            }
            let Some(name) = file_name.strip_suffix(METADATA_SUFFIX) else {
                continue;
            };
            let (info, settings) =
                load_metadata(&*fs, &topics_dir.join(&file_name), name, &defaults)?;
            topics.insert(
                info.name.clone(),
                Topic {
                    info,
                    settings,
                    partitions: BTreeMap::new(),
                },
            );
        }

        let manager = LogManager {
            checkpoints: Arc::new(DirCheckpoints::open(fs.clone(), &data_dir)?),
            health: Arc::default(),
            high_watermarks: std::sync::Mutex::new(BTreeMap::new()),
            deleter: Deleter::new(fs.clone()),
            fs,
            data_dir,
            static_defaults: defaults.clone(),
            defaults: RwLock::new(defaults),
            topics: RwLock::new(BTreeMap::new()),
        };
        let mut hosted = Vec::new();
        for dir_name in manager.fs.list_dir(&manager.data_dir)? {
            if is_delete_dir(&dir_name) {
                tracing::info!(dir = %dir_name, "finishing the deletion of a partition directory");
                manager.deleter.schedule(manager.data_dir.join(&dir_name));
                continue;
            }
            let Some((topic, partition)) = parse_partition_dir(&dir_name) else {
                continue;
            };
            if topics
                .get(topic)
                .is_none_or(|topic| partition >= topic.info.partitions)
            {
                tracing::warn!(dir = %dir_name, "removing a partition directory of no topic (an unfinished create or delete)");
                manager
                    .fs
                    .remove_dir_all(&manager.data_dir.join(&dir_name))?;
                continue;
            }
            hosted.push((topic.to_string(), partition));
        }
        let hosted_set: std::collections::BTreeSet<PartitionKey> = hosted.iter().cloned().collect();
        manager.checkpoints.retain(|key| hosted_set.contains(key));
        let (mut partitions_truncated, mut bytes_truncated) = (0usize, 0u64);
        let partitions = hosted.len();
        let opened = manager.open_logs(&topics, hosted, shutdown)?;
        let high_watermarks =
            checkpoint::read_offsets(&*manager.fs, &manager.data_dir, REPLICATION_OFFSET_FILE)?;
        for ((name, partition), log) in opened {
            if let Some(high_watermark) = high_watermarks.get(&(name.clone(), partition)) {
                log.restore_high_watermark(*high_watermark);
            }
            if log.recovery_report().removed_data() {
                partitions_truncated += 1;
                bytes_truncated += log.recovery_report().bytes_removed();
            }
            let topic = topics.get_mut(&name).expect("checked above");
            topic.partitions.insert(partition, Arc::new(log));
        }
        // What opening moved (recovery points at the recovered ends), once for every log.
        manager.checkpoints.write_if_changed()?;
        if shutdown == ShutdownState::Clean {
            manager.fs.remove_file(&marker)?;
            manager.fs.sync_dir(&manager.data_dir)?;
        }
        let duration = started.elapsed();
        metrics::gauge!(m::LOG_RECOVERY_SECONDS).set(duration.as_secs_f64());
        tracing::info!(
            data_dir = %manager.data_dir.display(),
            ?shutdown,
            topics = topics.len(),
            partitions,
            partitions_truncated,
            bytes_truncated,
            duration_ms = duration.as_millis() as u64,
            "opened log manager: log recovery done"
        );
        *manager.write_topics() = topics;
        Ok(manager)
    }

    /// Open (recovering as needed) the logs of `hosted` partitions on up to
    /// [`LOG_OPEN_THREADS`] threads: most of the time goes to file-system calls, which
    /// overlap well. The first error wins.
    fn open_logs(
        &self,
        topics: &BTreeMap<String, Topic>,
        hosted: Vec<(String, i32)>,
        shutdown: ShutdownState,
    ) -> Result<Vec<(PartitionKey, PartitionLog)>, StorageError> {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let open_one = |(name, partition): &(String, i32)| {
            PartitionLog::open(
                Arc::clone(&self.fs),
                self.partition_dir(name, *partition),
                (Arc::clone(&self.checkpoints), (name.clone(), *partition)),
                Arc::clone(&self.health),
                topics[name].settings.log.clone(),
                shutdown,
            )
        };
        let threads = LOG_OPEN_THREADS.min(hosted.len()).max(1);
        let results: Vec<Vec<(usize, Result<PartitionLog, StorageError>)>> =
            std::thread::scope(|scope| {
                let workers: Vec<_> = (0..threads)
                    .map(|_| {
                        scope.spawn(|| {
                            let mut done = Vec::new();
                            loop {
                                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                let Some(key) = hosted.get(i) else {
                                    return done;
                                };
                                done.push((i, open_one(key)));
                            }
                        })
                    })
                    .collect();
                workers
                    .into_iter()
                    .map(|worker| worker.join().expect("a log-opening thread panicked"))
                    .collect()
            });
        let mut opened: Vec<(usize, PartitionLog)> = Vec::with_capacity(hosted.len());
        for (i, result) in results.into_iter().flatten() {
            opened.push((i, result?));
        }
        opened.sort_by_key(|(i, _)| *i);
        Ok(opened
            .into_iter()
            .map(|(i, log)| (hosted[i].clone(), log))
            .collect())
    }

    fn read_topics(&self) -> RwLockReadGuard<'_, BTreeMap<String, Topic>> {
        self.topics
            .read()
            .expect("the topic map lock was poisoned by a panic")
    }

    fn write_topics(&self) -> RwLockWriteGuard<'_, BTreeMap<String, Topic>> {
        self.topics
            .write()
            .expect("the topic map lock was poisoned by a panic")
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The broker-wide defaults topics start from (the flags and the dynamic broker
    /// configs).
    pub fn defaults(&self) -> LogConfig {
        self.topic_defaults().log
    }

    /// [`LogManager::defaults`] with the replication settings (min ISR, unclean elections).
    fn topic_defaults(&self) -> TopicSettings {
        self.defaults
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.data_dir.join(format!("{topic}-{partition}"))
    }

    /// Create a topic with `partitions` partitions and config overrides (Kafka names, see
    /// [`SUPPORTED_TOPIC_CONFIGS`]), hosting every partition here.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicInfo, StorageError> {
        let info = self.create_topic_with_id(name, new_topic_id(), partitions, configs)?;
        for partition in 0..partitions {
            if let Err(error) = self.open_partition(name, partition) {
                let _ = self.delete_topic(name);
                return Err(error);
            }
        }
        Ok(info)
    }

    /// Record a topic with the id the controller gave it, hosting none of its partitions
    /// yet: [`LogManager::open_partition`] adds those this broker hosts.
    pub fn create_topic_with_id(
        &self,
        name: &str,
        id: [u8; 16],
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicInfo, StorageError> {
        validate_topic_name(name)?;
        validate_partition_count(partitions)?;
        let (settings, configs) = parse_overrides(&self.topic_defaults(), &configs)?;
        let mut topics = self.write_topics();
        if topics.contains_key(name) {
            return Err(StorageError::TopicAlreadyExists(name.to_string()));
        }
        let info = TopicInfo {
            name: name.to_string(),
            id,
            partitions,
            configs,
        };
        self.write_metadata(&info)?;
        tracing::debug!(topic = name, partitions, "created topic");
        topics.insert(
            name.to_string(),
            Topic {
                info: info.clone(),
                settings,
                partitions: BTreeMap::new(),
            },
        );
        Ok(info)
    }

    /// The log of a partition of a known topic, created empty (with its directory) if this
    /// broker did not host it yet.
    pub fn open_partition(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Arc<PartitionLog>, StorageError> {
        if let Some(log) = self.partition(topic, partition) {
            return Ok(log);
        }
        let mut topics = self.write_topics();
        let entry = topics
            .get_mut(topic)
            .ok_or_else(|| StorageError::UnknownTopic(topic.to_string()))?;
        if !(0..entry.info.partitions).contains(&partition) {
            return Err(StorageError::UnknownPartition {
                topic: topic.to_string(),
                partition,
            });
        }
        if let Some(log) = entry.partitions.get(&partition) {
            return Ok(log.clone());
        }
        let dir = self.partition_dir(topic, partition);
        if self.fs.exists(&dir)? {
            // Not open, so not ours: a leftover nothing should read.
            self.fs.remove_dir_all(&dir)?;
        }
        // A new log must not inherit the offsets an earlier log of that name left on disk.
        let key = (topic.to_string(), partition);
        self.checkpoints.forget_now(&key)?;
        let log = Arc::new(PartitionLog::open(
            Arc::clone(&self.fs),
            dir,
            (Arc::clone(&self.checkpoints), key),
            Arc::clone(&self.health),
            entry.settings.log.clone(),
            ShutdownState::Clean,
        )?);
        self.fs.sync_dir(&self.data_dir)?;
        entry.partitions.insert(partition, log.clone());
        Ok(log)
    }

    /// Stop hosting a partition: close its log and remove its directory (crash-safely, see
    /// the module docs). Returns whether there was one.
    pub fn remove_partition(&self, topic: &str, partition: i32) -> Result<bool, StorageError> {
        let mut topics = self.write_topics();
        let Some(log) = topics
            .get_mut(topic)
            .and_then(|entry| entry.partitions.remove(&partition))
        else {
            return Ok(false);
        };
        log.close_for_writes("this broker no longer hosts the partition");
        self.discard_dirs(topic, [partition])?;
        tracing::info!(partition = log.name(), "removed the local replica's log");
        Ok(true)
    }

    /// Rename partition directories to `-delete` names (durably), then delete them in the
    /// background.
    fn discard_dirs(
        &self,
        topic: &str,
        partitions: impl IntoIterator<Item = i32>,
    ) -> Result<(), StorageError> {
        let mut renamed = Vec::new();
        for partition in partitions {
            self.checkpoints.forget(&(topic.to_string(), partition));
            let dir_name = format!("{topic}-{partition}");
            let from = self.data_dir.join(&dir_name);
            let to = self.data_dir.join(delete_dir_name(&dir_name));
            match self.fs.rename(&from, &to) {
                Ok(()) => renamed.push(to),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(error.into()),
            }
        }
        if renamed.is_empty() {
            return Ok(());
        }
        self.fs.sync_dir(&self.data_dir)?;
        for dir in renamed {
            self.deleter.schedule(dir);
        }
        Ok(())
    }

    /// Resolves with the error once a write or fsync failed in the data directory (and
    /// poisoned a log): the directory can no longer be trusted (see `storage/dir_health.rs`).
    pub fn dir_failed(&self) -> impl std::future::Future<Output = String> + Send + 'static {
        self.health.failed()
    }

    /// Write the data directory's offset checkpoints, each only if it changed since its
    /// last write: one file each, two fsyncs each, however many partitions.
    /// `replication-offset-checkpoint` gets each `(topic, partition, high watermark)`,
    /// noted with its log first (see [`PartitionLog::note_high_watermark`]);
    /// `recovery-point-offset-checkpoint`, `log-start-offset-checkpoint` and
    /// `cleaner-offset-checkpoint` what the logs recorded.
    pub fn checkpoint_offsets(
        &self,
        high_watermarks: impl IntoIterator<Item = (String, i32, i64)>,
    ) -> Result<(), StorageError> {
        for (topic, partition, high_watermark) in high_watermarks {
            if let Some(log) = self.partition(&topic, partition) {
                // A poisoned log keeps the value it had.
                let _ = log.note_high_watermark(high_watermark);
            }
        }
        let current: BTreeMap<(String, i32), i64> = self
            .read_topics()
            .iter()
            .flat_map(|(name, topic)| {
                topic.partitions.iter().filter_map(|(partition, log)| {
                    Some(((name.clone(), *partition), log.high_watermark_checkpoint()?))
                })
            })
            .collect();
        let mut written = self
            .high_watermarks
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if *written != current {
            checkpoint::write_offsets(
                &*self.fs,
                &self.data_dir,
                REPLICATION_OFFSET_FILE,
                &current,
            )?;
            *written = current;
        }
        self.checkpoints.write_if_changed()?;
        Ok(())
    }

    /// Partition directories renamed for deletion and not removed yet.
    pub fn pending_deletions(&self) -> usize {
        self.deleter.pending()
    }

    /// Delete a topic and its partition directories.
    pub fn delete_topic(&self, name: &str) -> Result<(), StorageError> {
        let mut topics = self.write_topics();
        let topic = topics
            .get(name)
            .ok_or_else(|| StorageError::UnknownTopic(name.to_string()))?;
        let topics_dir = self.data_dir.join(TOPICS_DIR);
        remove_file_if_exists(
            &*self.fs,
            &topics_dir.join(format!("{name}{METADATA_SUFFIX}")),
        )?;
        self.fs.sync_dir(&topics_dir)?;
        for log in topic.partitions.values() {
            log.close_for_writes("its topic was deleted");
        }
        let hosted: Vec<i32> = topic.partitions.keys().copied().collect();
        topics.remove(name);
        // The topic is gone once its metadata is; a directory left behind by a crash here is
        // removed by the next open.
        self.discard_dirs(name, hosted)?;
        tracing::info!(topic = name, "deleted topic");
        Ok(())
    }

    /// Grow a topic to `new_total` partitions (hosting none of the new ones yet: see
    /// [`LogManager::open_partition`]).
    pub fn create_partitions(&self, name: &str, new_total: i32) -> Result<(), StorageError> {
        validate_partition_count(new_total)?;
        let mut topics = self.write_topics();
        let topic = topics
            .get_mut(name)
            .ok_or_else(|| StorageError::UnknownTopic(name.to_string()))?;
        let current = topic.info.partitions;
        if new_total <= current {
            return Err(StorageError::InvalidPartitions(format!(
                "topic {name:?} has {current} partitions; the count can only grow, not become {new_total}"
            )));
        }
        let info = TopicInfo {
            partitions: new_total,
            ..topic.info.clone()
        };
        self.write_metadata(&info)?;
        tracing::info!(
            topic = name,
            from = current,
            to = new_total,
            "added partitions"
        );
        topic.info = info;
        Ok(())
    }

    fn write_metadata(&self, info: &TopicInfo) -> Result<(), StorageError> {
        let file = MetadataFile {
            version: METADATA_VERSION,
            name: info.name.clone(),
            id: hex(&info.id),
            partitions: info.partitions,
            configs: info.configs.clone(),
        };
        let text = toml::to_string(&file).map_err(|error| {
            StorageError::Corrupt(format!(
                "encoding metadata of topic {:?}: {error}",
                info.name
            ))
        })?;
        checkpoint::write_atomic(
            &*self.fs,
            &self.data_dir.join(TOPICS_DIR),
            &format!("{}{METADATA_SUFFIX}", info.name),
            &format!("{}{TEMP_SUFFIX}", info.name),
            text.as_bytes(),
        )?;
        Ok(())
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<Arc<PartitionLog>> {
        let topics = self.read_topics();
        topics.get(topic)?.partitions.get(&partition).cloned()
    }

    pub fn topic(&self, name: &str) -> Option<TopicInfo> {
        self.read_topics().get(name).map(|topic| topic.info.clone())
    }

    /// Every topic, sorted by name.
    pub fn topics(&self) -> Vec<TopicInfo> {
        self.read_topics()
            .values()
            .map(|topic| topic.info.clone())
            .collect()
    }

    /// Bytes and segments of every partition log hosted here, summed.
    pub fn usage(&self) -> LogUsage {
        let logs: Vec<Arc<PartitionLog>> = self
            .read_topics()
            .values()
            .flat_map(|topic| topic.partitions.values().cloned())
            .collect();
        logs.iter()
            .fold(LogUsage::default(), |usage, log| LogUsage {
                size_bytes: usage.size_bytes + log.size_bytes(),
                segments: usage.segments + log.segment_count(),
            })
    }

    /// One retention pass over every partition; returns the segments deleted. Errors are
    /// logged and the pass goes on with the next partition.
    pub fn apply_retention(&self, now_ms: i64) -> usize {
        self.apply_retention_below(now_ms, &|_| i64::MAX)
    }

    /// [`LogManager::apply_retention`] keeping, per partition, everything at or above
    /// `limit(log)` (the high watermark; see [`PartitionLog::apply_retention_below`]).
    pub fn apply_retention_below(
        &self,
        now_ms: i64,
        limit: &dyn Fn(&PartitionLog) -> i64,
    ) -> usize {
        let logs: Vec<Arc<PartitionLog>> = self
            .read_topics()
            .values()
            .flat_map(|topic| topic.partitions.values().cloned())
            .collect();
        let mut deleted = 0;
        for log in logs {
            match log.apply_retention_below(now_ms, limit(&log)) {
                Ok(count) => deleted += count,
                Err(error) => tracing::warn!(partition = log.name(), %error, "retention failed"),
            }
        }
        deleted
    }

    /// Clean shutdown: close every log for writes, flush it, then write the clean-shutdown
    /// marker. If any flush fails the marker is not written, so the next open recovers.
    pub fn shutdown(&self) -> Result<(), StorageError> {
        let topics = self.read_topics();
        let mut first_error = None;
        for log in topics.values().flat_map(|topic| topic.partitions.values()) {
            log.close_for_writes("the broker is shutting down");
            if let Err(error) = log.flush() {
                tracing::error!(partition = log.name(), %error, "flush at shutdown failed");
                first_error.get_or_insert(error);
            }
        }
        if let Some(error) = first_error {
            return Err(error);
        }
        self.checkpoints.write_if_changed()?;
        checkpoint::write_atomic(
            &*self.fs,
            &self.data_dir,
            CLEAN_SHUTDOWN_FILE,
            &format!("{CLEAN_SHUTDOWN_FILE}{TEMP_SUFFIX}"),
            b"",
        )?;
        tracing::info!(data_dir = %self.data_dir.display(), "storage shut down cleanly");
        Ok(())
    }
}

fn load_metadata(
    fs: &dyn FileSystem,
    path: &Path,
    name: &str,
    defaults: &TopicSettings,
) -> Result<(TopicInfo, TopicSettings), StorageError> {
    let corrupt =
        |why: String| StorageError::Corrupt(format!("topic metadata {}: {why}", path.display()));
    let bytes = checkpoint::read_all(fs, path)?.unwrap_or_default();
    let text = std::str::from_utf8(&bytes).map_err(|error| corrupt(error.to_string()))?;
    let file: MetadataFile = toml::from_str(text).map_err(|error| corrupt(error.to_string()))?;
    if file.version != METADATA_VERSION {
        return Err(corrupt(format!("unsupported version {}", file.version)));
    }
    if file.name != name {
        return Err(corrupt(format!("names topic {:?}", file.name)));
    }
    validate_topic_name(&file.name).map_err(|error| corrupt(error.to_string()))?;
    validate_partition_count(file.partitions).map_err(|error| corrupt(error.to_string()))?;
    let id =
        parse_hex_id(&file.id).ok_or_else(|| corrupt(format!("bad topic id {:?}", file.id)))?;
    let (settings, configs) =
        parse_overrides(defaults, &file.configs).map_err(|error| corrupt(error.to_string()))?;
    Ok((
        TopicInfo {
            name: file.name,
            id,
            partitions: file.partitions,
            configs,
        },
        settings,
    ))
}

/// 16 random bytes, avoiding the ids Kafka reserves (all zeros, and the metadata topic's
/// `...0001`).
fn new_topic_id() -> [u8; 16] {
    let mut reserved_metadata = [0u8; 16];
    reserved_metadata[15] = 1;
    loop {
        let id: [u8; 16] = rand::random();
        if id != [0u8; 16] && id != reserved_metadata {
            return id;
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn parse_hex_id(text: &str) -> Option<[u8; 16]> {
    if text.len() != 32 || !text.is_ascii() {
        return None;
    }
    let mut id = [0u8; 16];
    for (i, byte) in id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(id)
}

mod alter_configs;
mod broker_configs;
mod clean;
mod kafka_topic_configs;
mod names;
mod topic_config;

pub use alter_configs::{apply_changes, apply_config_changes, check_config_change, ConfigChange};
pub use broker_configs::{
    check_broker_configs, effective_broker_configs, topic_synonym, DYNAMIC_LOG_CONFIGS,
    FOLLOWER_THROTTLE_RATE, LEADER_THROTTLE_RATE,
};
pub use clean::CleanPassStats;
pub use names::validate_topic_name;
use names::{parse_partition_dir, validate_partition_count};
use topic_config::{parse_overrides, TopicSettings};
pub use topic_config::{ConfigEntry, SUPPORTED_TOPIC_CONFIGS};

#[cfg(test)]
mod tests;
