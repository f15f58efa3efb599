//! Tests of what a compaction pass keeps and drops, reads across the gaps it leaves, its
//! limits and merging; the rest of the log's view is in `log_tests`, crashes in
//! `crash_tests`.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use sluice_protocol::batch::{BatchHeader, Compression};
use sluice_protocol::records::{decode_records, encode_batch, Record};

use super::*;
use crate::storage::testing::{open_log, std_fs, test_config};
use crate::storage::{LogConfig, PartitionLog, ShutdownState, StorageError};

/// A record: key and value (`None`: a tombstone).
pub(super) type Kv<'a> = (Option<&'a str>, Option<&'a str>);

pub(super) fn compacted_config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 300,
        cleaner: CleanerConfig {
            cleanup_policy: CleanupPolicy::Compact,
            ..CleanerConfig::default()
        },
        ..test_config()
    }
}

pub(super) fn keyed_batch(
    records: &[Kv<'_>],
    timestamp: i64,
    compression: Compression,
) -> BytesMut {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            key: key.map(|key| Bytes::copy_from_slice(key.as_bytes())),
            value: value.map(|value| Bytes::copy_from_slice(value.as_bytes())),
            headers: Vec::new(),
            timestamp: timestamp + i as i64,
        })
        .collect();
    BytesMut::from(&encode_batch(&records, compression).unwrap()[..])
}

/// Append one batch per entry (uncompressed) at timestamps 1000, 2000, ...
pub(super) fn append_all(log: &PartitionLog, batches: &[&[Kv<'_>]]) {
    for (i, records) in batches.iter().enumerate() {
        let timestamp = 1000 * (i as i64 + 1);
        log.append(keyed_batch(records, timestamp, Compression::None), 0, 0)
            .unwrap();
    }
}

/// Every record of the log: (offset, key, value).
pub(super) fn records_of(log: &PartitionLog) -> Vec<(i64, Option<String>, Option<String>)> {
    let bytes = log.read(log.log_start_offset(), usize::MAX).unwrap();
    let text = |field: Option<Bytes>| field.map(|bytes| String::from_utf8(bytes.to_vec()).unwrap());
    decode_records(&bytes)
        .unwrap()
        .into_iter()
        .map(|record| (record.offset, text(record.key), text(record.value)))
        .collect()
}

pub(super) fn everything(log: &PartitionLog) -> CleanLimits {
    CleanLimits::below(log.log_end_offset())
}

/// Keys a..e updated over 12 batches of 2 records (offsets 0..24), several segments.
pub(super) fn updates() -> Vec<Vec<Kv<'static>>> {
    let keys = ["a", "b", "c", "d", "e"];
    (0..12)
        .map(|i| {
            vec![
                (Some(keys[(2 * i) % 5]), Some("v")),
                (Some(keys[(2 * i + 1) % 5]), Some("w")),
            ]
        })
        .collect()
}

pub(super) fn append_updates(log: &PartitionLog) {
    let batches = updates();
    append_all(log, &batches.iter().map(Vec::as_slice).collect::<Vec<_>>());
}

#[test]
fn a_pass_keeps_the_latest_record_of_each_key_at_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(
        &std_fs(),
        dir.path(),
        &compacted_config(),
        ShutdownState::Clean,
    );
    append_updates(&log);
    let (end, segments) = (log.log_end_offset(), log.segment_count());
    assert!(segments >= 4, "{segments} segments");
    let before = records_of(&log);
    let stats = log.clean(&everything(&log), 10_000).unwrap();
    assert!(
        stats.segments_cleaned > 0 && stats.records_removed > 0,
        "{stats:?}"
    );
    let after = records_of(&log);
    // Below the active segment, exactly the latest record of each key is left.
    let active_base = stats.cleaned_to.unwrap();
    assert!(active_base > 10 && active_base < end, "{stats:?}");
    // The map covers the cleaned range only: a key's latest record there stays even if
    // the active segment has a newer one (as in Kafka).
    for (offset, key, value) in &before {
        let latest = before
            .iter()
            .rev()
            .find(|(o, k, _)| k == key && *o < active_base)
            .map_or(-1, |record| record.0);
        let kept = after
            .iter()
            .any(|record| record == &(*offset, key.clone(), value.clone()));
        assert_eq!(
            kept,
            *offset == latest || *offset >= active_base,
            "offset {offset}"
        );
    }
    // Offsets, the log end and the segments stay.
    assert_eq!((log.log_end_offset(), log.segment_count()), (end, segments));
    // A second pass has nothing left to do.
    assert_eq!(
        log.clean(&everything(&log), 10_000)
            .unwrap()
            .segments_cleaned,
        0
    );
}

#[test]
fn reads_across_gaps_return_the_next_batch_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let fs = std_fs();
    let config = LogConfig {
        index_interval_bytes: 1,
        ..compacted_config()
    };
    let log = open_log(&fs, dir.path(), &config, ShutdownState::Clean);
    append_updates(&log);
    log.clean(&everything(&log), 10_000).unwrap();
    let kept: Vec<i64> = records_of(&log).iter().map(|record| record.0).collect();
    let check = |log: &PartitionLog| {
        for offset in 0..log.log_end_offset() {
            let read = log.read(offset, 1).unwrap();
            let first = &headers_stored(&read)[0];
            assert!(first.last_offset() >= offset, "read at {offset}: {first:?}");
            let next_kept = kept.iter().find(|kept| **kept >= offset).unwrap();
            let records = decode_records(&read).unwrap();
            // An emptied batch may come first; then the next kept record follows it.
            if let Some(record) = records.first() {
                assert!(record.offset <= *next_kept || first.records_count == 0);
            }
        }
        // Lookups by timestamp still find the first record at or after it, a kept one.
        let found = log.offset_for_timestamp(11_000).unwrap().unwrap();
        assert!(found.timestamp >= 11_000 && found.offset <= 22, "{found:?}");
        assert!(kept.contains(&found.offset), "{found:?} {kept:?}");
        assert_eq!(
            records_of(log).iter().map(|r| r.0).collect::<Vec<_>>(),
            kept
        );
    };
    check(&log);
    log.flush().unwrap();
    drop(log);
    // Trusting the indexes, then scanning every segment (no recovery point).
    let log = open_log(&fs, dir.path(), &config, ShutdownState::Clean);
    check(&log);
    drop(log);
    // Without a recovery point every segment is scanned.
    let _ = std::fs::remove_file(dir.path().join("recovery-point-offset-checkpoint"));
    let log = open_log(&fs, dir.path(), &config, ShutdownState::Unclean);
    assert!(
        !log.recovery_report().removed_data(),
        "{:?}",
        log.recovery_report()
    );
    assert_eq!(log.recovery_report().segments_scanned, log.segment_count());
    check(&log);
}

#[test]
fn emptied_batches_are_dropped_except_the_last_of_each_segment() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(
        &std_fs(),
        dir.path(),
        &compacted_config(),
        ShutdownState::Clean,
    );
    // Key "x" in every batch: all but the last are superseded.
    let batches: Vec<Vec<Kv<'_>>> = (0..10).map(|_| vec![(Some("x"), Some("value"))]).collect();
    append_all(&log, &batches.iter().map(Vec::as_slice).collect::<Vec<_>>());
    let segments = log.segment_count();
    let stats = log.clean(&everything(&log), 100_000).unwrap();
    assert!(stats.batches_removed > 0, "{stats:?}");
    let read = log.read(0, usize::MAX).unwrap();
    let batch_headers = headers_stored(&read);
    // One (empty) batch per sealed segment, then the active segment's.
    assert!(batch_headers.len() < 10 && batch_headers.len() >= segments - 1);
    for pair in batch_headers.windows(2) {
        assert!(pair[0].next_offset() <= pair[1].base_offset);
    }
    assert!(batch_headers.iter().any(|header| header.records_count == 0));
    // The latest "x" of the cleaned range, and the active segment's records.
    let active_base = stats.cleaned_to.unwrap();
    let offsets: Vec<i64> = records_of(&log).iter().map(|record| record.0).collect();
    assert_eq!(offsets, (active_base - 1..10).collect::<Vec<_>>());
    // Lookups by timestamp skip the emptied batches, as Kafka's look at records.
    let found = log.offset_for_timestamp(0).unwrap().unwrap();
    assert_eq!(found.offset, active_base - 1);
}

pub(super) fn headers_stored(bytes: &[u8]) -> Vec<BatchHeader> {
    sluice_protocol::batch::Batches::new(bytes)
        .map(|item| validate_stored(item.unwrap().1).unwrap())
        .collect()
}

#[test]
fn tombstones_survive_until_their_delete_horizon_then_go() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        cleaner: CleanerConfig {
            delete_retention_ms: 50_000,
            ..compacted_config().cleaner
        },
        ..compacted_config()
    };
    let log = open_log(&std_fs(), dir.path(), &config, ShutdownState::Clean);
    let mut batches: Vec<Vec<Kv<'_>>> = vec![vec![(Some("k"), Some("v1")), (Some("j"), Some("v"))]];
    batches.push(vec![(Some("k"), None), (Some("j"), Some("w"))]);
    batches.extend((0..8).map(|_| {
        vec![(
            Some("filler"),
            Some("0123456789012345678901234567890123456789"),
        )]
    }));
    append_all(&log, &batches.iter().map(Vec::as_slice).collect::<Vec<_>>());
    let tombstone = |log: &PartitionLog| {
        records_of(log)
            .into_iter()
            .find(|r| r.1.as_deref() == Some("k"))
    };
    log.clean(&everything(&log), 100_000).unwrap();
    assert_eq!(
        tombstone(&log),
        Some((2, Some("k".into()), None)),
        "kept, horizon set"
    );
    let bytes = log.read(2, 1).unwrap();
    let record = &decode_records(&bytes).unwrap()[0];
    assert_eq!(
        record.timestamp, 2000,
        "record timestamps survive the horizon"
    );
    // Before the horizon (100_000 + 50_000) it stays, at it it goes; each pass needs new
    // dirty records (as Kafka's cleaner, which picks logs by their dirty ratio).
    let more = || -> Vec<Vec<Kv<'static>>> {
        (0..8)
            .map(|_| {
                vec![(
                    Some("more"),
                    Some("0123456789012345678901234567890123456789"),
                )]
            })
            .collect()
    };
    append_all(&log, &more().iter().map(Vec::as_slice).collect::<Vec<_>>());
    assert!(
        log.clean(&everything(&log), 149_999)
            .unwrap()
            .segments_cleaned
            > 0
    );
    assert!(tombstone(&log).is_some());
    append_all(&log, &more().iter().map(Vec::as_slice).collect::<Vec<_>>());
    let stats = log.clean(&everything(&log), 150_000).unwrap();
    assert_eq!(stats.tombstones_removed, 1, "{stats:?}");
    assert_eq!(tombstone(&log), None);
    assert!(records_of(&log).iter().any(|r| r.1.as_deref() == Some("j")));
}

#[test]
fn records_without_a_key_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(
        &std_fs(),
        dir.path(),
        &compacted_config(),
        ShutdownState::Clean,
    );
    let batches: Vec<Vec<Kv<'_>>> = (0..8)
        .map(|_| vec![(None, Some("no key")), (Some("k"), Some("v"))])
        .collect();
    append_all(&log, &batches.iter().map(Vec::as_slice).collect::<Vec<_>>());
    log.clean(&everything(&log), 100_000).unwrap();
    let keyless = records_of(&log).iter().filter(|r| r.1.is_none()).count();
    assert_eq!(keyless, 8);
}

#[test]
fn a_pass_respects_the_offset_limit_and_the_compaction_lag() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(
        &std_fs(),
        dir.path(),
        &compacted_config(),
        ShutdownState::Clean,
    );
    append_updates(&log);
    let before = records_of(&log);
    // Nothing ends below offset 3: nothing to clean.
    assert_eq!(
        log.clean(&CleanLimits::below(3), 100_000).unwrap(),
        CleanStats::default()
    );
    let lagged = LogConfig {
        cleaner: CleanerConfig {
            min_compaction_lag_ms: 99_000,
            ..compacted_config().cleaner
        },
        ..compacted_config()
    };
    drop(log);
    let log = open_log(&std_fs(), dir.path(), &lagged, ShutdownState::Clean);
    // At 100_000 every record (timestamps 1_000 to 12_001) is younger than 99 s.
    assert_eq!(
        log.clean(&everything(&log), 100_000)
            .unwrap()
            .segments_cleaned,
        0
    );
    assert_eq!(records_of(&log), before);
    let stats = log.clean(&everything(&log), 200_000).unwrap();
    assert!(stats.segments_cleaned > 0);
}

#[test]
fn a_full_offset_map_cleans_up_to_where_it_filled_and_the_next_pass_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(
        &std_fs(),
        dir.path(),
        &compacted_config(),
        ShutdownState::Clean,
    );
    let batches: Vec<Vec<Kv<'_>>> = ["a", "b", "c", "d", "e", "f", "a", "b", "c", "d", "e", "f"]
        .iter()
        .map(|key| vec![(Some(*key), Some("0123456789012345678901234567890123456789"))])
        .collect();
    append_all(&log, &batches.iter().map(Vec::as_slice).collect::<Vec<_>>());
    let small = CleanLimits {
        offset_map_bytes_max: 3 * 49,
        ..everything(&log)
    };
    let stats = log.clean(&small, 100_000).unwrap();
    assert!(stats.map_full && stats.map_keys == 3, "{stats:?}");
    let first = stats.cleaned_to.unwrap();
    let stats = log.clean(&small, 100_000).unwrap();
    assert!(stats.cleaned_to.unwrap() > first, "{stats:?}");
    let tiny = CleanLimits {
        offset_map_bytes_max: 10,
        ..everything(&log)
    };
    drop(log);
    let log = open_log(
        &std_fs(),
        dir.path(),
        &compacted_config(),
        ShutdownState::Clean,
    );
    assert!(matches!(
        log.clean(&tiny, 100_000),
        Err(StorageError::InvalidConfig(_))
    ));
}

#[test]
fn compressed_batches_are_filtered_and_stay_compressed_with_their_codec() {
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            cleaner: CleanerConfig {
                delete_retention_ms: 0,
                ..compacted_config().cleaner
            },
            ..compacted_config()
        };
        let log = open_log(&std_fs(), dir.path(), &config, ShutdownState::Clean);
        let batch = keyed_batch(
            &[(Some("k"), Some("old")), (Some("z"), Some("1"))],
            1000,
            codec,
        );
        log.append(batch, 0, 0).unwrap();
        append_all(&log, &[&[(Some("k"), None)]]);
        let filler: Vec<Vec<Kv<'_>>> = (0..6)
            .map(|_| vec![(Some("f"), Some("0123456789012345678901234567890123456789"))])
            .collect();
        append_all(&log, &filler.iter().map(Vec::as_slice).collect::<Vec<_>>());
        let first = log.clean(&everything(&log), 100_000).unwrap();
        assert_eq!(
            first.compressed_batches_rewritten, 1,
            "{codec:?}: {first:?}"
        );
        // "k"'s old value is gone from inside the compressed batch; "z" stays at offset 1,
        // still compressed with the same codec.
        let records = records_of(&log);
        assert!(!records.iter().any(|r| r.0 == 0), "{codec:?}: {records:?}");
        assert!(records.contains(&(1, Some("z".into()), Some("1".into()))));
        let stored = log.read(0, usize::MAX).unwrap();
        let header = BatchHeader::parse(&stored).unwrap();
        assert_eq!(header.compression().unwrap(), codec);
        assert_eq!((header.base_offset, header.last_offset()), (0, 1));
        // The tombstone goes once its horizon passed (at a pass that has new dirty
        // records): nothing of "k" is left.
        append_all(&log, &filler.iter().map(Vec::as_slice).collect::<Vec<_>>());
        log.clean(&everything(&log), 200_000).unwrap();
        let records = records_of(&log);
        assert!(
            !records.iter().any(|r| r.1.as_deref() == Some("k")),
            "{codec:?}: {records:?}"
        );
        assert!(records.contains(&(1, Some("z".into()), Some("1".into()))));
    }
}

#[test]
fn compaction_alone_turns_off_retention_and_delete_alone_turns_off_cleaning() {
    let dir = tempfile::tempdir().unwrap();
    let compact_only = LogConfig {
        retention_ms: Some(1),
        retention_bytes: Some(1),
        ..compacted_config()
    };
    let log = open_log(&std_fs(), dir.path(), &compact_only, ShutdownState::Clean);
    append_updates(&log);
    assert_eq!(log.apply_retention(1_000_000).unwrap(), 0);
    drop(log);
    let dir = tempfile::tempdir().unwrap();
    let delete_only = LogConfig {
        cleaner: CleanerConfig::default(),
        ..compacted_config()
    };
    let log = open_log(&std_fs(), dir.path(), &delete_only, ShutdownState::Clean);
    append_updates(&log);
    assert_eq!(
        log.clean(&everything(&log), 100_000).unwrap(),
        CleanStats::default()
    );
}

#[test]
fn segments_are_grouped_up_to_segment_bytes() {
    let log: Arc<dyn crate::storage::fs::StorageFile> = std_fs()
        .open(&tempfile::tempdir().unwrap().path().join("f"))
        .unwrap();
    let segment = |base_offset: i64, next_offset: i64, size_bytes: u64| SegmentSnapshot {
        base_offset,
        next_offset,
        size_bytes,
        max_timestamp: 0,
        log: Arc::clone(&log),
    };
    let segments = [
        segment(0, 10, 100),
        segment(10, 20, 150),
        segment(20, 30, 100),
        segment(30, 40, 300),
        segment(40, i64::from(i32::MAX) + 41, 1),
    ];
    let groups: Vec<Vec<i64>> = group_by_size(&segments, 300)
        .iter()
        .map(|group| group.iter().map(|s| s.base_offset).collect())
        .collect();
    // 100 + 150 fit in 300, 100 + 300 do not; the last would overflow relative offsets.
    assert_eq!(groups, vec![vec![0, 10], vec![20], vec![30], vec![40]]);
}

#[test]
fn a_later_pass_merges_segments_earlier_passes_shrank() {
    let dir = tempfile::tempdir().unwrap();
    let fs = std_fs();
    let log = open_log(&fs, dir.path(), &compacted_config(), ShutdownState::Clean);
    append_updates(&log);
    log.clean(&everything(&log), 100_000).unwrap();
    let (segments, cleaned) = (log.segment_count(), records_of(&log));
    drop(log);
    let bigger = LogConfig {
        segment_bytes_max: 1_000,
        ..compacted_config()
    };
    let log = open_log(&fs, dir.path(), &bigger, ShutdownState::Clean);
    // After a reopen the whole log counts as dirty (the first dirty offset is in memory).
    let stats = log.clean(&everything(&log), 100_000).unwrap();
    assert!(log.segment_count() < segments, "{stats:?}");
    assert_eq!(records_of(&log), cleaned);
    log.flush().unwrap();
    drop(log);
    let _ = std::fs::remove_file(dir.path().join("recovery-point-offset-checkpoint"));
    let log = open_log(&fs, dir.path(), &bigger, ShutdownState::Unclean);
    assert!(
        !log.recovery_report().removed_data(),
        "{:?}",
        log.recovery_report()
    );
    assert_eq!(records_of(&log), cleaned);
}

/// `batch` as written by producer `producer_id` (CRC-32C recomputed).
fn from_producer(mut batch: BytesMut, producer_id: i64) -> BytesMut {
    batch[43..51].copy_from_slice(&producer_id.to_be_bytes());
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch
}

#[test]
fn the_last_batch_of_each_producer_stays_even_when_emptied() {
    let dir = tempfile::tempdir().unwrap();
    // Segments of several batches, so that batch 2 is not the last of its segment.
    let config = LogConfig {
        segment_bytes_max: 1_000,
        ..compacted_config()
    };
    let log = open_log(&std_fs(), dir.path(), &config, ShutdownState::Clean);
    let record = |value| keyed_batch(&[(Some("x"), Some(value))], 1000, Compression::None);
    log.append(from_producer(record("7a"), 7), 0, 0).unwrap(); // offset 0
    log.append(from_producer(record("7b"), 7), 0, 0).unwrap(); // 1: producer 7's last
    log.append(from_producer(record("8a"), 8), 0, 0).unwrap(); // 2
    for _ in 0..10 {
        log.append(
            from_producer(record("8b-0123456789012345678901234567890123456789"), 8),
            0,
            0,
        )
        .unwrap();
    }
    log.clean(&everything(&log), 100_000).unwrap();
    let kept: Vec<(i64, i64, i32)> = headers_stored(&log.read(0, usize::MAX).unwrap())
        .iter()
        .map(|header| (header.base_offset, header.producer_id, header.records_count))
        .collect();
    assert!(!kept.iter().any(|batch| batch.0 == 0), "{kept:?}");
    assert!(
        kept.contains(&(1, 7, 0)),
        "producer 7's last batch, emptied: {kept:?}"
    );
    assert!(!kept.iter().any(|batch| batch.0 == 2), "{kept:?}");
}

#[test]
fn expired_tombstones_make_a_pass_due_with_no_new_records() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        cleaner: CleanerConfig {
            delete_retention_ms: 1_000,
            min_cleanable_dirty_ratio: crate::storage::cleaner::parse_dirty_ratio("r", "0.5")
                .unwrap(),
            ..compacted_config().cleaner
        },
        ..compacted_config()
    };
    let log = open_log(&std_fs(), dir.path(), &config, ShutdownState::Clean);
    append_all(&log, &[&[(Some("k"), Some("v"))], &[(Some("k"), None)]]);
    let filler: Vec<Vec<Kv<'_>>> = (0..6)
        .map(|i| {
            vec![(
                Some(["f0", "f1", "f2", "f3", "f4", "f5"][i]),
                Some("0123456789012345678901234567890123456789"),
            )]
        })
        .collect();
    append_all(&log, &filler.iter().map(Vec::as_slice).collect::<Vec<_>>());
    let limits = everything(&log);
    let first = log.clean(&limits, 100_000).unwrap();
    assert_eq!(first.delete_horizon, Some(101_000), "{first:?}");
    assert!(records_of(&log).iter().any(|r| r.1.as_deref() == Some("k")));
    // Nothing new: not due before the horizon, due from it on.
    assert_eq!(log.cleaning_due(&limits, 100_999).unwrap(), None);
    assert!(log.cleaning_due(&limits, 101_000).unwrap().is_some());
    let second = log.clean(&limits, 101_000).unwrap();
    assert_eq!(second.tombstones_removed, 1, "{second:?}");
    assert!(
        !records_of(&log).iter().any(|r| r.1.as_deref() == Some("k")),
        "{:?}",
        records_of(&log)
    );
    // No tombstone left: no pass due any more.
    assert_eq!(log.cleaning_due(&limits, 200_000).unwrap(), None);
}
