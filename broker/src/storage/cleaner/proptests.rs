//! Property test of compaction: whatever the batches (uncompressed, or with any of the four
//! codecs, which the cleaner filters inside), segment sizes, map sizes and pass
//! times, a consumer reading the cleaned log from the start ends with the same key -> value
//! state as one reading the log before cleaning, every record left is an original record
//! at its original offset, and the cleaned log reopens (every segment scanned) unchanged.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use sluice_protocol::batch::Compression;
use sluice_protocol::records::{decode_records, encode_batch, ConsumedRecord, Record};

use super::*;
use crate::storage::testing::{open_log, std_fs, test_config};
use crate::storage::{LogConfig, PartitionLog, ShutdownState, StorageError};

/// A record: key index (`None`: no key) and value length (`None`: a tombstone).
type Spec = (Option<u8>, Option<usize>);

fn build(records: &[Spec], timestamp: i64, compressed: bool) -> BytesMut {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            key: key.map(|key| Bytes::from(format!("key-{key}"))),
            value: value.map(|len| Bytes::from(vec![b'a' + (i % 26) as u8; len])),
            headers: Vec::new(),
            timestamp: timestamp + i as i64,
        })
        .collect();
    // Compressed batches rotate through the four codecs.
    let codecs = [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    let codec = if compressed {
        codecs[(timestamp / 100) as usize % codecs.len()]
    } else {
        Compression::None
    };
    BytesMut::from(&encode_batch(&records, codec).unwrap()[..])
}

fn all_records(log: &PartitionLog) -> Vec<ConsumedRecord> {
    decode_records(&log.read(log.log_start_offset(), usize::MAX).unwrap()).unwrap()
}

/// The key -> value state a consumer builds reading `records` in order.
fn materialise(records: &[ConsumedRecord]) -> BTreeMap<Bytes, Bytes> {
    let mut state = BTreeMap::new();
    for record in records {
        match (&record.key, &record.value) {
            (Some(key), Some(value)) => {
                state.insert(key.clone(), value.clone());
            }
            (Some(key), None) => {
                state.remove(key);
            }
            (None, _) => {}
        }
    }
    state
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn a_consumer_of_the_cleaned_log_ends_in_the_same_state(
        batches in prop::collection::vec(
            (
                prop::collection::vec((prop::option::weighted(0.9, 0u8..6), prop::option::weighted(0.8, 0usize..40)), 1..5),
                prop::bool::weighted(0.2),
                prop::bool::weighted(0.3),
            ),
            1..30,
        ),
        segment_bytes_max in 150u64..700,
        delete_retention_ms in prop::sample::select(vec![0u64, 1_000, 1_000_000]),
        map_bytes in prop::sample::select(vec![120usize, 400, 1 << 20]),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let fs = std_fs();
        let config = LogConfig {
            segment_bytes_max,
            cleaner: CleanerConfig {
                cleanup_policy: CleanupPolicy::Compact,
                delete_retention_ms,
                ..CleanerConfig::default()
            },
            ..test_config()
        };
        let log = open_log(&fs, dir.path(), &config, ShutdownState::Clean);
        let mut before = Vec::new();
        let end = |log: &PartitionLog| log.log_end_offset();
        // Passes between appends (at 1 s per batch), and one at the end.
        for (i, (records, compressed, pass_after)) in batches.iter().enumerate() {
            let appended = log.log_end_offset();
            log.append(build(records, 100 * i as i64, *compressed), 0, 0).unwrap();
            before.extend(decode_records(&log.read(appended, usize::MAX).unwrap()).unwrap());
            if *pass_after || i + 1 == batches.len() {
                let limits = CleanLimits { offset_map_bytes_max: map_bytes, ..CleanLimits::below(end(&log)) };
                match log.clean(&limits, 10_000 + 1_000 * i as i64) {
                    Ok(_) | Err(StorageError::InvalidConfig(_)) => {}
                    Err(error) => panic!("{error}"),
                }
            }
        }
        let end = end(&log);
        let after = all_records(&log);
        prop_assert_eq!(materialise(&after), materialise(&before));
        prop_assert_eq!(log.log_end_offset(), end);
        for record in &after {
            prop_assert!(before.contains(record), "not an original record: {:?}", record);
        }
        log.flush().unwrap();
        drop(log);
        let _ = std::fs::remove_file(dir.path().join("recovery-point-offset-checkpoint"));
        let log = open_log(&fs, dir.path(), &config, ShutdownState::Unclean);
        prop_assert!(!log.recovery_report().removed_data(), "{:?}", log.recovery_report());
        prop_assert_eq!(all_records(&log), after);
    }
}
