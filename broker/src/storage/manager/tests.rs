//! Tests of [`LogManager`](super::LogManager): topics, hosted partitions, crash leftovers.

use super::*;
use crate::storage::testing::{batch, headers, std_fs, test_config};
use crate::storage::{CleanLimits, Durability, StdFileSystem};

fn open(dir: &tempfile::TempDir) -> LogManager {
    LogManager::open(std_fs(), dir.path().to_path_buf(), test_config()).unwrap()
}

/// Wait (bounded) until the background deleter has nothing left, then list what the data
/// dir holds.
fn settled_entries(manager: &LogManager, dir: &tempfile::TempDir) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while manager.pending_deletions() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "deletions still pending after 10 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

#[test]
fn topic_metadata_and_data_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open(&dir);
    let info = manager
        .create_topic(
            "orders",
            3,
            configs(&[("retention.ms", "1000"), ("durability", "FSYNC")]),
        )
        .unwrap();
    assert_eq!(
        info.configs,
        configs(&[("durability", "fsync"), ("retention.ms", "1000")])
    );
    assert_ne!(info.id, [0u8; 16]);
    manager
        .partition("orders", 1)
        .unwrap()
        .append(batch(4, 0, 5, 0), 0, 0)
        .unwrap();
    manager.shutdown().unwrap();
    drop(manager);

    let manager = open(&dir);
    assert_eq!(manager.topic("orders"), Some(info));
    assert_eq!(manager.topics().len(), 1);
    let partition = manager.partition("orders", 1).unwrap();
    assert_eq!(partition.log_end_offset(), 4);
    assert_eq!(partition.config().durability, Durability::Fsync);
    assert_eq!(partition.config().retention_ms, Some(1000));
    assert_eq!(manager.partition("orders", 0).unwrap().log_end_offset(), 0);
    assert!(manager.partition("orders", 3).is_none());
    assert!(manager.partition("orders", -1).is_none());
    assert!(manager.partition("other", 0).is_none());
}

#[test]
fn clean_shutdown_marker_skips_scan_and_is_deleted_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join(CLEAN_SHUTDOWN_FILE);
    let manager = open(&dir);
    manager.create_topic("t", 1, BTreeMap::new()).unwrap();
    manager
        .partition("t", 0)
        .unwrap()
        .append(batch(2, 0, 5, 0), 0, 0)
        .unwrap();
    manager.shutdown().unwrap();
    assert!(marker.exists());
    drop(manager);

    let manager = open(&dir);
    assert!(
        !marker.exists(),
        "the marker must go so that a later crash is detected"
    );
    assert_eq!(
        manager
            .partition("t", 0)
            .unwrap()
            .recovery_report()
            .segments_scanned,
        0
    );
    drop(manager); // a crash: no shutdown

    let manager = open(&dir);
    let partition = manager.partition("t", 0).unwrap();
    assert_eq!(partition.recovery_report().segments_scanned, 1);
    assert_eq!(partition.log_end_offset(), 2);
}

#[test]
fn appends_after_shutdown_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open(&dir);
    manager.create_topic("t", 1, BTreeMap::new()).unwrap();
    let partition = manager.partition("t", 0).unwrap();
    manager.shutdown().unwrap();
    assert!(
        matches!(partition.append(batch(1, 0, 1, 0), 0, 0), Err(StorageError::Poisoned(why)) if why.contains("shutting down"))
    );
}

#[test]
fn invalid_topic_names_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open(&dir);
    let too_long = "x".repeat(250);
    for name in ["", ".", "..", "a/b", "a b", "ü", too_long.as_str()] {
        assert!(
            matches!(
                manager.create_topic(name, 1, BTreeMap::new()),
                Err(StorageError::InvalidTopic(_))
            ),
            "{name:?} must be refused"
        );
    }
    manager
        .create_topic(&"x".repeat(249), 1, BTreeMap::new())
        .unwrap();
    manager
        .create_topic("a.b_c-D9", 1, BTreeMap::new())
        .unwrap();
    assert!(matches!(
        manager.create_topic("a.b_c-D9", 1, BTreeMap::new()),
        Err(StorageError::TopicAlreadyExists(_))
    ));
}

#[test]
fn invalid_configs_are_rejected_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open(&dir);
    for (key, value) in [
        ("no.such.config", "1"),
        ("retention.ms", "soon"),
        ("retention.ms", "-2"),
        ("retention.bytes", "1.5"),
        ("segment.bytes", "10"),
        ("segment.ms", "0"),
        ("max.message.bytes", "-1"),
        ("cleanup.policy", "compact,shred"),
        ("delete.retention.ms", "-1"),
        ("min.cleanable.dirty.ratio", "1.5"),
        ("min.compaction.lag.ms", "-1"),
        ("max.compaction.lag.ms", "0"),
        ("min.insync.replicas", "0"),
        ("durability", "sometimes"),
    ] {
        let result = manager.create_topic("t", 1, configs(&[(key, value)]));
        assert!(
            matches!(&result, Err(StorageError::InvalidConfig(why)) if why.contains(key)),
            "{key}={value}: {result:?}"
        );
    }
    assert!(manager.topics().is_empty());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "only topics/ exists"
    );
}

#[test]
fn partition_counts_must_be_positive_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open(&dir);
    for partitions in [0, -1, TOPIC_PARTITIONS_MAX + 1] {
        assert!(matches!(
            manager.create_topic("t", partitions, BTreeMap::new()),
            Err(StorageError::InvalidPartitions(_))
        ));
    }
}

#[test]
fn delete_topic_removes_its_directories_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open(&dir);
    let first = manager.create_topic("t", 2, BTreeMap::new()).unwrap();
    manager.create_topic("t-1", 1, BTreeMap::new()).unwrap();
    manager
        .partition("t", 0)
        .unwrap()
        .append(batch(1, 0, 1, 0), 0, 0)
        .unwrap();
    manager.delete_topic("t").unwrap();
    assert!(manager.topic("t").is_none());
    assert!(manager.partition("t", 0).is_none());
    assert!(!dir.path().join("t-0").exists());
    assert!(!dir.path().join("t-1").exists());
    assert!(
        dir.path().join("t-1-0").exists(),
        "another topic's partition stays"
    );
    assert_eq!(
        settled_entries(&manager, &dir),
        ["t-1-0", "topics"],
        "the renamed directories are deleted in the background"
    );
    assert!(matches!(
        manager.delete_topic("t"),
        Err(StorageError::UnknownTopic(_))
    ));
    drop(manager);

    let manager = open(&dir);
    assert!(manager.topic("t").is_none());
    let again = manager.create_topic("t", 1, BTreeMap::new()).unwrap();
    assert_ne!(again.id, first.id);
    assert_eq!(manager.partition("t", 0).unwrap().log_end_offset(), 0);
}

#[test]
fn create_partitions_only_grows() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open(&dir);
    manager.create_topic("t", 2, BTreeMap::new()).unwrap();
    manager.create_partitions("t", 4).unwrap();
    assert_eq!(manager.topic("t").unwrap().partitions, 4);
    assert!(
        manager.partition("t", 3).is_none(),
        "new partitions are not hosted until opened"
    );
    manager.open_partition("t", 3).unwrap();
    assert!(matches!(
        manager.open_partition("t", 4),
        Err(StorageError::UnknownPartition { .. })
    ));
    for total in [4, 3] {
        assert!(matches!(
            manager.create_partitions("t", total),
            Err(StorageError::InvalidPartitions(_))
        ));
    }
    assert!(matches!(
        manager.create_partitions("nope", 5),
        Err(StorageError::UnknownTopic(_))
    ));
    drop(manager);
    let manager = open(&dir);
    assert_eq!(manager.topic("t").unwrap().partitions, 4);
    assert!(manager.partition("t", 3).is_some());
}

#[test]
fn describe_configs_lists_every_key_and_marks_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open(&dir);
    manager
        .create_topic(
            "t",
            1,
            configs(&[("retention.ms", "-1"), ("min.insync.replicas", "2")]),
        )
        .unwrap();
    let entries = manager.describe_configs("t").unwrap();
    // Kafka's 33 and Sluice's durability, in name order.
    let names: Vec<&str> = entries.iter().map(|entry| entry.name.as_str()).collect();
    assert_eq!(names.len(), 34);
    assert!(names.windows(2).all(|w| w[0] < w[1]), "{names:?}");
    for name in SUPPORTED_TOPIC_CONFIGS {
        assert!(names.contains(name), "{name}");
    }
    let get = |name: &str| {
        entries
            .iter()
            .find(|entry| entry.name == name)
            .unwrap()
            .clone()
    };
    assert_eq!(
        get("retention.ms"),
        ConfigEntry {
            name: "retention.ms".into(),
            value: Some("-1".into()),
            is_default: false,
            synonym: None,
            config_type: 5,
            kafka_default: Some("604800000"),
        }
    );
    assert_eq!(get("retention.ms").source(), 1, "a topic override");
    // Not implemented by Sluice: listed at Kafka's default, Kafka's source for it.
    let timestamp_type = get("message.timestamp.type");
    assert_eq!(timestamp_type.value.as_deref(), Some("CreateTime"));
    assert_eq!(timestamp_type.source(), 5);
    // The test config's segment size is not Kafka's default: a broker setting.
    assert_eq!(get("segment.bytes").source(), 4);
    assert_eq!(get("min.insync.replicas").value.as_deref(), Some("2"));
    let segment_bytes = get("segment.bytes");
    assert!(segment_bytes.is_default);
    assert_eq!(
        segment_bytes.value,
        Some(test_config().segment_bytes_max.to_string())
    );
    assert_eq!(get("durability").value.as_deref(), Some("replicated"));
    assert_eq!(manager.min_insync_replicas("t"), 2);
    assert_eq!(manager.min_insync_replicas("unknown"), 1);
    assert!(matches!(
        manager.describe_configs("unknown"),
        Err(StorageError::UnknownTopic(_))
    ));
    // Kafka's configs Sluice does not implement may be set to Kafka's default only.
    let streams_like = configs(&[("message.timestamp.type", "CreateTime")]);
    let info = manager.create_topic("s", 1, streams_like).unwrap();
    assert_eq!(info.configs["message.timestamp.type"], "CreateTime");
    let refused = manager.create_topic(
        "x",
        1,
        configs(&[("message.timestamp.type", "LogAppendTime")]),
    );
    assert!(
        matches!(&refused, Err(StorageError::InvalidConfig(m)) if m.contains("only Kafka's default")),
        "{refused:?}"
    );
    let unknown = manager.create_topic("y", 1, configs(&[("no.such.config", "1")]));
    assert!(matches!(unknown, Err(StorageError::InvalidConfig(_))));
}

#[test]
fn leftover_partition_directories_are_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open(&dir);
    manager.create_topic("t", 1, BTreeMap::new()).unwrap();
    drop(manager);
    // An unfinished create (no metadata) and a partition past the topic's count.
    std::fs::create_dir(dir.path().join("ghost-0")).unwrap();
    std::fs::create_dir(dir.path().join("t-5")).unwrap();
    std::fs::create_dir(dir.path().join("not-a-partition")).unwrap();
    let manager = open(&dir);
    assert!(!dir.path().join("ghost-0").exists());
    assert!(!dir.path().join("t-5").exists());
    assert!(dir.path().join("t-0").exists());
    assert!(
        dir.path().join("not-a-partition").exists(),
        "only partition directories are touched"
    );
    assert!(manager.topic("ghost").is_none());
}

#[test]
fn retention_pass_covers_every_partition() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open(&dir);
    manager
        .create_topic(
            "t",
            2,
            configs(&[("segment.bytes", "100"), ("retention.ms", "1000")]),
        )
        .unwrap();
    for partition in 0..2 {
        let log = manager.partition("t", partition).unwrap();
        for i in 0..3 {
            log.append(batch(1, i, 20, i as u64), 0, 0).unwrap();
        }
        assert_eq!(log.segment_count(), 3);
    }
    let before = manager.usage();
    assert_eq!(before.segments, 6);
    assert_eq!(manager.apply_retention(1_000_000), 4);
    let log = manager.partition("t", 1).unwrap();
    assert_eq!(log.log_start_offset(), 2);
    assert_eq!(headers(&log.read(2, 1).unwrap())[0].base_offset, 2);
    // What is left: one segment with one batch per partition.
    let after = manager.usage();
    assert_eq!(after.segments, 2);
    assert_eq!(after.size_bytes, 2 * log.size_bytes());
    assert!(after.size_bytes > 0 && after.size_bytes < before.size_bytes);
}

#[test]
fn a_topic_has_directories_only_for_the_partitions_opened_here() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open(&dir);
    manager
        .create_topic_with_id("t", [7; 16], 3, BTreeMap::new())
        .unwrap();
    assert_eq!(settled_entries(&manager, &dir), ["topics"]);
    let log = manager.open_partition("t", 1).unwrap();
    log.append(batch(2, 0, 5, 0), 0, 0).unwrap();
    assert!(Arc::ptr_eq(&log, &manager.open_partition("t", 1).unwrap()));
    assert!(manager.partition("t", 0).is_none());
    assert_eq!(settled_entries(&manager, &dir), ["t-1", "topics"]);
    manager.shutdown().unwrap();
    drop(manager);

    let manager = open(&dir);
    assert!(manager.partition("t", 0).is_none());
    assert!(manager.partition("t", 2).is_none());
    assert_eq!(manager.partition("t", 1).unwrap().log_end_offset(), 2);
    assert!(matches!(
        manager.open_partition("nope", 0),
        Err(StorageError::UnknownTopic(_))
    ));
}

#[test]
fn remove_partition_renames_the_directory_then_deletes_it() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open(&dir);
    manager.create_topic("t", 2, BTreeMap::new()).unwrap();
    let log = manager.partition("t", 0).unwrap();
    log.append(batch(3, 0, 5, 0), 0, 0).unwrap();
    assert!(manager.remove_partition("t", 0).unwrap());
    assert!(!manager.remove_partition("t", 0).unwrap(), "removed once");
    assert!(manager.partition("t", 0).is_none());
    assert!(
        log.append(batch(1, 3, 5, 0), 0, 0).is_err(),
        "a removed log takes no more writes"
    );
    assert_eq!(settled_entries(&manager, &dir), ["t-1", "topics"]);
    // Hosting it again starts empty.
    assert_eq!(manager.open_partition("t", 0).unwrap().log_end_offset(), 0);
}

#[test]
fn a_deletion_interrupted_by_a_crash_finishes_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open(&dir);
    manager.create_topic("t", 1, BTreeMap::new()).unwrap();
    manager
        .partition("t", 0)
        .unwrap()
        .append(batch(3, 0, 5, 0), 0, 0)
        .unwrap();
    drop(manager);
    // A crash after the rename, before the background removal: the directory and its
    // files are still there under their -delete name.
    let renamed = dir
        .path()
        .join("t-0.0123456789abcdef0123456789abcdef-delete");
    std::fs::rename(dir.path().join("t-0"), &renamed).unwrap();
    assert!(renamed.join("00000000000000000000.log").exists());

    let manager = open(&dir);
    assert!(
        manager.partition("t", 0).is_none(),
        "a -delete directory is never opened as a partition"
    );
    assert_eq!(settled_entries(&manager, &dir), ["topics"]);
}

#[test]
fn high_watermarks_of_every_partition_go_to_one_file_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open(&dir);
    manager.create_topic("t", 3, BTreeMap::new()).unwrap();
    for partition in 0..3 {
        manager
            .partition("t", partition)
            .unwrap()
            .append(batch(4, 0, 5, 0), 0, 0)
            .unwrap();
    }
    manager
        .checkpoint_offsets([
            ("t".to_string(), 0, 2),
            ("t".to_string(), 1, 99),   // past the end: clamped to 4
            ("gone".to_string(), 0, 5), // not hosted: ignored
        ])
        .unwrap();
    let text = std::fs::read_to_string(dir.path().join("replication-offset-checkpoint")).unwrap();
    assert_eq!(text, "0\n2\nt 0 2\nt 1 4\n");
    assert!(
        !dir.path()
            .join("t-0")
            .join("high-watermark-checkpoint")
            .exists(),
        "no per-partition file"
    );
    manager.shutdown().unwrap();
    drop(manager);

    let manager = open(&dir);
    let high_watermark = |p| {
        manager
            .partition("t", p)
            .unwrap()
            .high_watermark_checkpoint()
    };
    assert_eq!(high_watermark(0), Some(2));
    assert_eq!(high_watermark(1), Some(4));
    assert_eq!(high_watermark(2), None);
}

#[test]
fn recovery_points_and_log_starts_of_every_partition_go_to_one_file_each() {
    let dir = tempfile::tempdir().unwrap();
    let small_segments = LogConfig {
        segment_bytes_max: 300,
        ..test_config()
    };
    let manager =
        LogManager::open(std_fs(), dir.path().to_path_buf(), small_segments.clone()).unwrap();
    manager.create_topic("t", 3, BTreeMap::new()).unwrap();
    for partition in 0..3 {
        let log = manager.partition("t", partition).unwrap();
        for i in 0..(4 * (partition + 1)) {
            log.append(batch(2, i64::from(i), 40, 0), 0, 0).unwrap();
        }
        assert!(
            log.segment_count() > 1,
            "each roll moved the recovery point"
        );
        // And a batch past the last roll's flush.
        log.append(batch(1, 99, 10, 0), 0, 0).unwrap();
    }
    manager.checkpoint_offsets([]).unwrap();
    let recovery_points = checkpoint::read_offsets(
        &StdFileSystem,
        dir.path(),
        "recovery-point-offset-checkpoint",
    )
    .unwrap();
    assert_eq!(recovery_points.len(), 3, "{recovery_points:?}");
    for partition in 0..3 {
        let log = manager.partition("t", partition).unwrap();
        let recovery_point = recovery_points[&("t".to_string(), partition)];
        assert!(
            recovery_point > 0 && recovery_point < log.log_end_offset(),
            "t-{partition}: recovery point {recovery_point}, log end {}",
            log.log_end_offset()
        );
        for legacy in ["recovery-point-checkpoint", "log-start-offset-checkpoint"] {
            assert!(
                !log.dir().join(legacy).exists(),
                "no per-partition {legacy}"
            );
        }
    }
    // A crash: each log is scanned only past its checkpointed recovery point.
    drop(manager);
    let manager = LogManager::open(std_fs(), dir.path().to_path_buf(), small_segments).unwrap();
    for partition in 0..3 {
        let log = manager.partition("t", partition).unwrap();
        let report = log.recovery_report();
        assert_eq!(report.segments_scanned, 1, "t-{partition}: {report:?}");
        assert!(report.bytes_scanned < log.size_bytes(), "{report:?}");
    }
    // Opening moved every recovery point to its log's end and wrote the file once.
    let recovery_points = checkpoint::read_offsets(
        &StdFileSystem,
        dir.path(),
        "recovery-point-offset-checkpoint",
    )
    .unwrap();
    for partition in 0..3 {
        let log = manager.partition("t", partition).unwrap();
        assert_eq!(
            recovery_points[&("t".to_string(), partition)],
            log.log_end_offset()
        );
    }
    // A removed partition leaves the files with the next write.
    manager.remove_partition("t", 1).unwrap();
    manager.checkpoint_offsets([]).unwrap();
    let recovery_points = checkpoint::read_offsets(
        &StdFileSystem,
        dir.path(),
        "recovery-point-offset-checkpoint",
    )
    .unwrap();
    assert!(!recovery_points.contains_key(&("t".to_string(), 1)));
    assert_eq!(recovery_points.len(), 2);
}

#[test]
fn a_partition_created_again_does_not_inherit_its_predecessors_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open(&dir);
    manager.create_topic("t", 1, BTreeMap::new()).unwrap();
    let log = manager.partition("t", 0).unwrap();
    log.append(batch(3, 0, 10, 0), 0, 0).unwrap();
    // A follower that fell behind its leader's log start: the start is written at once.
    log.truncate_fully_and_start_at(1_000).unwrap();
    let log_starts =
        checkpoint::read_offsets(&StdFileSystem, dir.path(), "log-start-offset-checkpoint")
            .unwrap();
    assert_eq!(log_starts[&("t".to_string(), 0)], 1_000);
    // Reassigned away and back before any checkpoint write, then a crash.
    manager.remove_partition("t", 0).unwrap();
    let log = manager.open_partition("t", 0).unwrap();
    log.append(batch(2, 0, 10, 0), 0, 0).unwrap();
    drop(log);
    drop(manager);
    let manager = open(&dir);
    let log = manager.partition("t", 0).unwrap();
    assert_eq!(log.log_start_offset(), 0);
    assert_eq!(log.log_end_offset(), 2);
}

#[test]
fn compaction_configs_parse_and_describe_with_kafka_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open(&dir);
    let info = manager
        .create_topic(
            "c",
            1,
            configs(&[
                ("cleanup.policy", "delete, compact"),
                ("min.cleanable.dirty.ratio", "0.25"),
            ]),
        )
        .unwrap();
    // Trimmed, in the order given (Kafka shows a list as it was set).
    assert_eq!(info.configs["cleanup.policy"], "delete,compact");
    manager.create_topic("d", 1, BTreeMap::new()).unwrap();
    let described = |topic: &str| -> BTreeMap<String, String> {
        manager
            .describe_configs(topic)
            .unwrap()
            .into_iter()
            .map(|entry| (entry.name, entry.value.unwrap()))
            .collect()
    };
    let defaults = described("d");
    assert_eq!(defaults["cleanup.policy"], "delete");
    assert_eq!(defaults["delete.retention.ms"], "86400000");
    assert_eq!(defaults["min.cleanable.dirty.ratio"], "0.5");
    assert_eq!(defaults["min.compaction.lag.ms"], "0");
    assert_eq!(defaults["max.compaction.lag.ms"], i64::MAX.to_string());
    assert_eq!(described("c")["min.cleanable.dirty.ratio"], "0.25");
    // Kafka's cross-check of the two lags.
    let conflict = configs(&[
        ("min.compaction.lag.ms", "10"),
        ("max.compaction.lag.ms", "5"),
    ]);
    assert!(matches!(
        manager.create_topic("e", 1, conflict),
        Err(StorageError::InvalidConfig(why)) if why.contains("min.compaction.lag.ms")
    ));
}

#[test]
fn a_clean_pass_cleans_the_compacted_partitions_that_are_due() {
    use sluice_protocol::batch::Compression;
    use sluice_protocol::records::{encode_batch, Record};

    let dir = tempfile::tempdir().unwrap();
    let manager = open(&dir);
    let small = [("segment.bytes", "300")];
    manager
        .create_topic("c", 1, configs(&[small[0], ("cleanup.policy", "compact")]))
        .unwrap();
    manager.create_topic("d", 1, configs(&small)).unwrap();
    for topic in ["c", "d"] {
        let log = manager.open_partition(topic, 0).unwrap();
        for i in 0..12 {
            let record = Record {
                key: Some(bytes::Bytes::from_static(b"same key")),
                value: Some(bytes::Bytes::from(vec![b'v'; 40])),
                headers: Vec::new(),
                timestamp: i,
            };
            let built = encode_batch(&[record], Compression::None).unwrap();
            log.append(bytes::BytesMut::from(&built[..]), 0, 0).unwrap();
        }
    }
    let end = |log: &PartitionLog| log.log_end_offset();
    let limits = CleanLimits {
        offset_map_bytes_max: 1 << 20,
        ..CleanLimits::below(0)
    };
    let stats = manager.clean_pass(1_000, &end, limits);
    assert_eq!(stats.partitions_cleaned, 1, "{stats:?}");
    assert!(stats.segments_cleaned > 0);
    // Every sealed segment was dirty; "d" is not compacted and has no ratio.
    assert_eq!(stats.max_dirty_ratio, 1.0);
    assert_eq!(manager.partition("d", 0).unwrap().dirty_ratio(), None);
    assert!(!manager.partition("c", 0).unwrap().uncleanable());
    assert!(
        manager.partition("c", 0).unwrap().size_bytes()
            < manager.partition("d", 0).unwrap().size_bytes()
    );
    // Nothing dirty is left: no pass is due.
    assert_eq!(
        manager.clean_pass(1_000, &end, limits),
        CleanPassStats::default()
    );
    assert_eq!(manager.partition("c", 0).unwrap().dirty_ratio(), Some(0.0));

    // Where the pass ended survives a restart (cleaner-offset-checkpoint): the reopened
    // log has nothing dirty, so no pass is due (without the checkpoint all of it would be).
    manager.shutdown().unwrap();
    drop(manager);
    let checkpoint = std::fs::read_to_string(dir.path().join("cleaner-offset-checkpoint"));
    assert!(
        checkpoint.unwrap().contains("c 0 "),
        "the file names the partition"
    );
    let manager = open(&dir);
    assert_eq!(
        manager.clean_pass(1_000, &end, limits),
        CleanPassStats::default()
    );
    assert_eq!(manager.partition("c", 0).unwrap().dirty_ratio(), Some(0.0));
}

#[test]
fn altered_configs_apply_to_open_logs_at_once_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open(&dir);
    manager
        .create_topic("t", 2, configs(&[("durability", "fsync")]))
        .unwrap();
    let log = manager.partition("t", 1).unwrap();
    assert_eq!(log.config().retention_bytes, None);
    let altered = configs(&[
        ("durability", "fsync"),
        ("retention.bytes", "4096"),
        ("segment.bytes", "2048"),
    ]);
    assert!(manager.alter_topic_configs("t", &altered).unwrap());
    assert_eq!(log.config().retention_bytes, Some(4096));
    assert_eq!(log.config().segment_bytes_max, 2048);
    assert_eq!(log.config().durability, Durability::Fsync);
    // The same overrides again change nothing; a bad one changes nothing either.
    assert!(!manager.alter_topic_configs("t", &altered).unwrap());
    assert!(matches!(
        manager.alter_topic_configs("t", &configs(&[("retention.ms", "x")])),
        Err(StorageError::InvalidConfig(_))
    ));
    assert_eq!(log.config().retention_bytes, Some(4096));
    manager.shutdown().unwrap();
    drop((log, manager));
    let manager = open(&dir);
    assert_eq!(manager.topic("t").unwrap().configs, altered);
    let log = manager.open_partition("t", 0).unwrap();
    assert_eq!(log.config().segment_bytes_max, 2048);
}

#[test]
fn config_changes_follow_kafkas_operations_and_keep_durability() {
    let before = configs(&[("durability", "fsync"), ("cleanup.policy", "compact")]);
    let append = ConfigChange::Append {
        name: "cleanup.policy".into(),
        value: "delete,compact".into(),
    };
    let after = apply_config_changes(&before, &[append], false).unwrap();
    assert_eq!(after.get("cleanup.policy").unwrap(), "compact,delete");
    let replaced = apply_config_changes(
        &configs(&[("retention.ms", "5")]),
        &[ConfigChange::Set {
            name: "segment.ms".into(),
            value: "100".into(),
        }],
        true,
    )
    .unwrap();
    assert_eq!(replaced, configs(&[("segment.ms", "100")]));
    // Replacing the whole set may not drop the durability fixed at creation.
    let dropped = apply_config_changes(&before, &[], true);
    assert!(matches!(dropped, Err(StorageError::InvalidConfig(_))));
}
