//! Opens a partition log whose files hold fuzzer bytes: what recovery does with a segment,
//! offset index and time index after a crash, a torn write or a bad disk.
//!
//! Each input starts from a real log (a data directory with topic `t`, some valid batches
//! appended through `LogManager`, shut down cleanly), then overwrites its files:
//! `[flags][batches][position u16][length u16][segment bytes][length u16][index bytes][time
//! index bytes]`. The segment bytes are written at `position` (0xffff: at the end); flag
//! bit 0 replaces the offset index, bit 1 the time index, bit 2 keeps the clean-shutdown
//! marker (the broker then trusts the files it finds, as Kafka does).
//!
//! Oracles: no panic. After an unclean shutdown the directory opens; every batch read from
//! the log start to the log end is whole, passes its CRC and lies in the log's offsets, in
//! order; a new batch appends at the log end and reads back; after a clean shutdown the log
//! reopens with the same log end offset.

#![no_main]

use std::collections::BTreeMap;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sluice_broker::storage::{FileSystem, LogConfig, LogManager, PartitionLog, StdFileSystem};
use sluice_broker_fuzz::scratch_dir;
use sluice_protocol::batch::{self, Batches, Compression};
use sluice_protocol::records::{encode_batch, Record};

const SEGMENT: &str = "00000000000000000000";

fuzz_target!(|data: &[u8]| {
    let [flags, batches, p_hi, p_lo, l_hi, l_lo, rest @ ..] = data else {
        return;
    };
    let dir = scratch_dir("log");
    let _ = std::fs::remove_dir_all(&dir);
    let fs: Arc<dyn FileSystem> = Arc::new(StdFileSystem);
    prepare(&fs, &dir, usize::from(*batches % 8));

    let position = u16::from_be_bytes([*p_hi, *p_lo]);
    let length = usize::from(u16::from_be_bytes([*l_hi, *l_lo])).min(rest.len());
    let (segment, rest) = rest.split_at(length);
    let (index, time_index) = match rest {
        [hi, lo, tail @ ..] => {
            tail.split_at(usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len()))
        }
        _ => (&[][..], &[][..]),
    };
    let partition = dir.join("t-0");
    write_at(&partition.join(format!("{SEGMENT}.log")), position, segment);
    if flags & 1 != 0 {
        std::fs::write(partition.join(format!("{SEGMENT}.index")), index).unwrap();
    }
    if flags & 2 != 0 {
        std::fs::write(partition.join(format!("{SEGMENT}.timeindex")), time_index).unwrap();
    }
    let clean = flags & 4 != 0;
    if !clean {
        let _ = std::fs::remove_file(dir.join(".clean-shutdown"));
    }

    let opened = LogManager::open(fs.clone(), dir.clone(), config());
    if clean {
        // Trusting a clean shutdown that lied: anything but a panic is fair.
        if let Ok(logs) = opened {
            if let Some(log) = logs.partition("t", 0) {
                let _ = log.read(log.log_start_offset(), 1 << 20);
            }
        }
    } else {
        let logs = opened.unwrap_or_else(|e| panic!("recovery must open the directory: {e}"));
        check(&logs, &fs, &dir);
    }
    std::fs::remove_dir_all(&dir).unwrap();
});

fn config() -> LogConfig {
    LogConfig {
        index_interval_bytes: 64,
        ..LogConfig::default()
    }
}

/// A data directory with topic `t` (one partition) holding `batches` batches, shut down.
fn prepare(fs: &Arc<dyn FileSystem>, dir: &Path, batches: usize) {
    let logs = LogManager::open(fs.clone(), dir.to_path_buf(), config()).unwrap();
    logs.create_topic("t", 1, BTreeMap::new()).unwrap();
    let log = logs.partition("t", 0).unwrap();
    for n in 0..batches {
        append(&log, 3, n as i64);
    }
    logs.shutdown().unwrap();
}

fn append(log: &PartitionLog, records: usize, seed: i64) -> i64 {
    let batch: Vec<Record> = (0..records)
        .map(|i| Record {
            key: None,
            value: Some(format!("value-{seed}-{i}").into_bytes().into()),
            headers: Vec::new(),
            timestamp: 1_700_000_000_000 + seed * 10 + i as i64,
        })
        .collect();
    let bytes = encode_batch(&batch, Compression::None).unwrap();
    let epoch = log.latest_epoch().unwrap_or(0);
    log.append(BytesMut::from(&bytes[..]), epoch, 1_700_000_000_000)
        .unwrap_or_else(|e| panic!("append at the log end: {e}"))
        .base_offset
}

fn write_at(path: &Path, position: u16, bytes: &[u8]) {
    let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    match position {
        u16::MAX => file.seek(SeekFrom::End(0)).unwrap(),
        p => file.seek(SeekFrom::Start(u64::from(p))).unwrap(),
    };
    file.write_all(bytes).unwrap();
}

fn check(logs: &LogManager, fs: &Arc<dyn FileSystem>, dir: &Path) {
    let log = logs
        .partition("t", 0)
        .expect("the partition survives recovery");
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    assert!(0 <= start && start <= end, "offsets {start}..{end}");
    let mut offset = start;
    while offset < end {
        let bytes = log
            .read(offset, 1 << 20)
            .unwrap_or_else(|e| panic!("read at {offset} of {start}..{end}: {e}"));
        assert!(
            !bytes.is_empty(),
            "nothing read at {offset} of {start}..{end}"
        );
        for item in Batches::new(&bytes) {
            let (header, raw) = item.unwrap_or_else(|e| panic!("a bad batch at {offset}: {e:?}"));
            batch::validate(raw).unwrap_or_else(|e| panic!("batch at {offset}: {e}"));
            assert!(header.last_offset() >= offset, "batch behind the reader");
            assert!(header.next_offset() <= end, "batch past the log end");
            offset = header.next_offset();
        }
    }
    let appended = append(&log, 2, 99);
    assert_eq!(appended, end, "a new batch appends at the log end");
    let read = log.read(appended, 1 << 20).unwrap();
    let (header, _) = Batches::new(&read).next().expect("the new batch").unwrap();
    assert_eq!(header.base_offset, appended);
    drop(log);
    logs.shutdown().unwrap();
    let again = LogManager::open(fs.clone(), dir.to_path_buf(), config()).unwrap();
    let log = again.partition("t", 0).unwrap();
    assert_eq!(
        log.log_end_offset(),
        end + 2,
        "a clean restart keeps the log end"
    );
}
