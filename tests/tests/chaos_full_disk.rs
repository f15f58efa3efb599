//! A full disk (issue 13's disk faults; needs root to mount, as CI runs): a broker whose
//! data directory is a 16 MiB tmpfs takes acks=all batches until the disk is nearly full,
//! then refuses them with KAFKA_STORAGE_ERROR (56), counted in its metrics, without going
//! down and without poisoning the log (the append is refused before it writes anything).
//! Given room again, it takes writes at once, right after the acknowledged ones; and after
//! `kill -9` and a restart every acknowledged batch is at the offset its acknowledgement
//! gave.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sluice_tests::raw::{metric_sum, produce_batch, value_batch, wait_for_metrics, RawConnection};
use sluice_tests::workload::{consume_partition, runtime};
use sluice_tests::{Broker, BrokerOptions};

const TOPIC: &str = "full";
const KAFKA_STORAGE_ERROR: i16 = 56;

/// A size-limited tmpfs, unmounted on drop.
struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    fn mount(dir: &Path, size: &str) -> SmallDisk {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mount a {size} tmpfs at {} (needs root)",
            dir.display()
        );
        SmallDisk {
            dir: dir.to_path_buf(),
        }
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.dir)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "resize the tmpfs at {}",
            self.dir.display()
        );
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// One batch of 64 records of 1000 bytes, each value naming its batch.
fn batch(n: usize) -> bytes::Bytes {
    let values: Vec<String> = (0..64)
        .map(|i| format!("{n:06}-{i:02}-{}", "x".repeat(990)))
        .collect();
    value_batch(&values)
}

#[test]
fn a_full_disk_refuses_writes_with_a_storage_error_and_loses_nothing() {
    let mount_point = tempfile::tempdir().expect("temporary directory");
    let disk = SmallDisk::mount(mount_point.path(), "16m");
    let mut broker = Broker::start_with(BrokerOptions {
        data_dir: Some(mount_point.path().join("data")),
        extra_args: vec!["--segment-bytes".into(), "1048576".into()],
        ..BrokerOptions::default()
    });
    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    conn.ensure_topic(TOPIC);

    // Fill the disk: every batch is acknowledged until the first KAFKA_STORAGE_ERROR; the
    // broker keeps answering (and refusing) after it.
    let mut acked: Vec<(usize, i64)> = Vec::new();
    let mut refused = 0;
    for n in 0..1_000 {
        let (error, base_offset) = produce_batch(&mut conn, TOPIC, 0, batch(n), -1);
        match error {
            0 => {
                assert_eq!(refused, 0, "batch {n} acknowledged after a refusal");
                acked.push((n, base_offset));
            }
            KAFKA_STORAGE_ERROR => {
                refused += 1;
                if refused == 3 {
                    break;
                }
            }
            other => panic!("batch {n}: error {other}\n{}", broker.log_tail(4096)),
        }
    }
    assert_eq!(refused, 3, "the 16 MiB disk never filled up");
    assert!(!acked.is_empty());
    assert!(broker.is_running(), "the broker went down on a full disk");
    wait_for_metrics(&broker.metrics_address(), Duration::from_secs(10), |text| {
        metric_sum(
            text,
            "sluice_request_errors_total{api=\"Produce\",error=\"KAFKA_STORAGE_ERROR\"}",
        ) >= 3.0
    })
    .unwrap_or_else(|text| panic!("the refusals are not counted:\n{text}"));

    // Room again: the broker takes writes at once, right after the acknowledged ones.
    disk.resize("64m");
    let end_before = acked.last().map(|(_, base)| base + 64).unwrap();
    let (error, base_offset) = produce_batch(&mut conn, TOPIC, 0, batch(5_000), -1);
    assert_eq!(
        error,
        0,
        "no writes once space returned\n{}",
        broker.log_tail(4096)
    );
    assert_eq!(base_offset, end_before);
    acked.push((5_000, base_offset));

    // And after kill -9 and a restart, every acknowledged batch is where it was acknowledged.
    broker.kill9();
    broker.restart();
    let end = acked.last().map(|(_, base)| base + 64).unwrap();
    let records = runtime()
        .block_on(consume_partition(
            &broker.bootstrap(),
            TOPIC,
            0,
            end,
            Duration::from_secs(60),
        ))
        .unwrap_or_else(|e| panic!("reading back: {e}\n{}", broker.log_tail(4096)));
    for (n, base) in &acked {
        let first = records
            .iter()
            .find(|(offset, _)| offset == base)
            .unwrap_or_else(|| panic!("batch {n} at {base} is gone"));
        let value = first.1.as_deref().unwrap_or_default();
        assert!(
            value.starts_with(format!("{n:06}-00-").as_bytes()),
            "offset {base} holds another batch"
        );
    }
    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    let (error, base_offset) = produce_batch(&mut conn, TOPIC, 0, batch(9_999), -1);
    assert_eq!(
        error,
        0,
        "no writes after the restart with room\n{}",
        broker.log_tail(4096)
    );
    assert_eq!(
        base_offset, end,
        "the next batch does not follow the acknowledged ones"
    );
    drop(broker);
}
