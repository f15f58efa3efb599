//! Storage metrics of one broker: bytes appended, fsyncs (`--durability fsync`), log size
//! and segment gauges, and what recovery reports after a `kill -9` and a torn tail.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use sluice_tests::raw::{self, http_get, metric_value, produce_batch, value_batch, RawConnection};
use sluice_tests::{Broker, BrokerOptions};

const TOPIC: &str = "storage-metrics";
/// How long the once-a-second gauges may take to show a change.
const GAUGE_DEADLINE: Duration = Duration::from_secs(15);

fn partition_series(name: &str) -> String {
    format!("{name}{{topic=\"{TOPIC}\",partition=\"0\"}}")
}

/// Scrape until `check` accepts the metrics text; panic with the last text and the broker's
/// log after `GAUGE_DEADLINE`.
fn wait_for_metrics(broker: &Broker, what: &str, check: impl Fn(&str) -> bool) -> String {
    raw::wait_for_metrics(&broker.metrics_address(), GAUGE_DEADLINE, check).unwrap_or_else(|text| {
        panic!(
            "timed out waiting for {what}; metrics:\n{text}\n--- log ---\n{}",
            broker.log_tail(16 * 1024)
        )
    })
}

/// Produce `batches` batches with acks=all (the topic is auto-created by the first, which is
/// retried until the partition has a leader); returns the bytes produced.
fn produce(broker: &Broker, batches: usize) -> u64 {
    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    let mut bytes = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    for n in 0..batches {
        let batch = value_batch(&[format!("record-{n}-a"), format!("record-{n}-b")]);
        loop {
            let (code, _) = produce_batch(&mut conn, TOPIC, 0, batch.clone(), -1);
            if code == 0 {
                break;
            }
            assert!(Instant::now() < deadline, "produce keeps failing: {code}");
            std::thread::sleep(Duration::from_millis(50));
        }
        bytes += batch.len() as u64;
    }
    bytes
}

/// The partition's newest segment file.
fn active_segment(broker: &Broker) -> PathBuf {
    let dir = broker.data_dir().join(format!("{TOPIC}-0"));
    let mut logs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs.pop().expect("the partition has a segment")
}

#[test]
fn appends_fsyncs_sizes_and_recovery_are_measured() {
    let mut broker = Broker::start_with(BrokerOptions {
        extra_args: vec![
            "--durability".into(),
            "fsync".into(),
            "--log-format".into(),
            "json".into(),
        ],
        ..Default::default()
    });
    let before = http_get(&broker.metrics_address(), "/metrics").unwrap();
    let flushes_before = metric_value(&before, "sluice_log_flushes_total").unwrap_or(0.0);
    assert!(
        metric_value(&before, "sluice_log_recovery_seconds").is_some(),
        "the start-up recovery time is set at start:\n{before}"
    );

    let produced = produce(&broker, 5);
    let text = wait_for_metrics(&broker, "the log size gauges to show the batches", |text| {
        metric_value(text, &partition_series("sluice_partition_log_size_bytes"))
            == Some(produced as f64)
    });
    // A single node appends exactly the produced batches (nothing else is written).
    assert_eq!(
        metric_value(&text, "sluice_log_bytes_appended_total"),
        Some(produced as f64),
        "{text}"
    );
    // Every acks=all produce waited for a group-commit fsync: at least one, timed.
    let flushes = metric_value(&text, "sluice_log_flushes_total").unwrap_or(0.0);
    assert!(flushes >= flushes_before + 1.0, "{text}");
    let timed = metric_value(&text, "sluice_log_flush_time_seconds_count").unwrap_or(0.0);
    assert_eq!(timed, flushes, "every flush is timed:\n{text}");
    assert_eq!(
        metric_value(&text, "sluice_log_size_bytes"),
        Some(produced as f64),
        "{text}"
    );
    assert!(metric_value(&text, "sluice_log_segments").unwrap_or(0.0) >= 1.0);
    assert_eq!(
        metric_value(&text, &partition_series("sluice_partition_log_segments")),
        Some(1.0)
    );
    assert_eq!(
        metric_value(
            &text,
            &partition_series("sluice_partition_log_start_offset")
        ),
        Some(0.0)
    );
    assert_eq!(
        metric_value(&text, "sluice_partitions"),
        Some(1.0),
        "the one partition this broker hosts:\n{text}"
    );
    assert_eq!(
        metric_value(&text, "sluice_log_recovery_truncated_bytes_total"),
        Some(0.0),
        "nothing truncated yet:\n{text}"
    );

    // A crash leaves the first half of a batch at the end of the active segment.
    broker.kill9();
    let torn = value_batch(&["torn-a", "torn-b"]);
    let torn_bytes = torn.len() / 2;
    std::fs::OpenOptions::new()
        .append(true)
        .open(active_segment(&broker))
        .unwrap()
        .write_all(&torn[..torn_bytes])
        .unwrap();
    broker.restart();

    let text = wait_for_metrics(&broker, "the log size after recovery", |text| {
        metric_value(text, "sluice_log_size_bytes") == Some(produced as f64)
    });
    assert_eq!(
        metric_value(&text, "sluice_log_recovery_truncated_bytes_total"),
        Some(torn_bytes as f64),
        "{text}"
    );
    assert!(
        metric_value(&text, "sluice_log_recovery_seconds").is_some_and(|seconds| seconds > 0.0),
        "{text}"
    );
    // One INFO line for the partition (with its offsets), one summary line.
    let log = broker.log();
    let after_restart = log.rsplit("---- restart ----").next().unwrap();
    let truncated = log_lines(after_restart, "recovery truncated the partition log");
    assert_eq!(truncated.len(), 1, "{after_restart}");
    let fields = &truncated[0]["fields"];
    assert_eq!(truncated[0]["level"], "INFO");
    assert_eq!(fields["partition"], format!("{TOPIC}-0"));
    assert_eq!(fields["bytes_truncated"], torn_bytes as u64);
    assert_eq!(fields["log_end_offset"], 10, "5 batches of 2 records kept");
    assert_eq!(fields["log_start_offset"], 0);
    let summary = log_lines(after_restart, "opened log manager: log recovery done");
    assert_eq!(summary.len(), 1, "{after_restart}");
    assert_eq!(summary[0]["fields"]["partitions_truncated"], 1);
    assert_eq!(summary[0]["fields"]["bytes_truncated"], torn_bytes as u64);
}

/// The JSON log lines whose message is `message`.
fn log_lines(log: &str, message: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["fields"]["message"] == message)
        .collect()
}
