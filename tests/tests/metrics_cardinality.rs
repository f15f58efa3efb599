//! `--metrics-per-partition`: on by default, per-partition gauges and per-topic counters
//! appear in `/metrics`; turned off, only the broker-wide ones do (bounded label
//! cardinality).

use std::time::Duration;

use sluice_tests::raw::{
    fetch, fetch_request, http_get, produce_batch, value_batch, wait_for_metrics, RawConnection,
};
use sluice_tests::{Broker, BrokerOptions};

const TOPIC: &str = "cardinality";

/// Produce to the topic and fetch it back, then wait (bounded) until the once-a-second
/// gauges show the partition led, and return the metrics text.
fn metrics_after_produce(broker: &Broker) -> String {
    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    let (code, _) = produce_batch(&mut conn, TOPIC, 0, value_batch(&["a", "b"]), 1);
    assert_eq!(code, 0);
    let response = fetch(&mut conn, &fetch_request(TOPIC, 0, 0, 1 << 20));
    assert_eq!(response.responses[0].partitions[0].error_code, 0);
    wait_for_metrics(&broker.metrics_address(), Duration::from_secs(10), |text| {
        text.lines().any(|l| l == "sluice_partitions_led 1")
    })
    .unwrap_or_else(|text| panic!("no sluice_partitions_led 1 in\n{text}"))
}

#[test]
fn per_partition_gauges_follow_the_switch() {
    let on = Broker::start();
    let text = metrics_after_produce(&on);
    assert!(
        text.contains("sluice_partition_high_watermark{topic=\"cardinality\",partition=\"0\"}"),
        "per-partition gauges by default:\n{text}"
    );
    for counter in [
        "sluice_topic_bytes_in_total",
        "sluice_topic_messages_in_total",
        "sluice_topic_bytes_out_total",
        "sluice_topic_produce_requests_total",
        "sluice_topic_fetch_requests_total",
    ] {
        assert!(
            text.contains(&format!("{counter}{{topic=\"cardinality\"}}")),
            "per-topic {counter} by default:\n{text}"
        );
    }
    for gauge in [
        "sluice_partition_log_size_bytes",
        "sluice_partition_log_segments",
        "sluice_partition_log_start_offset",
    ] {
        assert!(
            text.contains(&format!("{gauge}{{topic=\"cardinality\",partition=\"0\"}}")),
            "per-partition {gauge} by default:\n{text}"
        );
    }

    let off = Broker::start_with(BrokerOptions {
        extra_args: vec!["--metrics-per-partition".into(), "false".into()],
        ..Default::default()
    });
    let text = metrics_after_produce(&off);
    assert!(
        !text.contains("sluice_partition_high_watermark{")
            && !text.contains("sluice_partition_log_end_offset{"),
        "no per-partition series when switched off:\n{text}"
    );
    assert!(
        !text.contains("topic=\""),
        "no per-topic series when switched off:\n{text}"
    );
    // The broker-wide counters still move.
    assert!(
        text.lines()
            .any(|l| l.starts_with("sluice_bytes_in_total ") && !l.ends_with(" 0")),
        "broker-wide bytes in:\n{text}"
    );
    // No partition-labelled series at all; the broker-wide log gauges stay.
    assert!(
        !text.contains("partition=\""),
        "no partition-labelled series when switched off:\n{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("sluice_log_size_bytes ")),
        "broker-wide log size:\n{text}"
    );
}

/// Counters of rare events (ISR changes, elections, truncations, recovery) are exported at
/// 0 from start-up, so dashboards and alerts see "none yet" rather than "no data".
#[test]
fn rare_event_counters_are_exported_at_zero_from_start_up() {
    let broker = Broker::start();
    let text = http_get(&broker.metrics_address(), "/metrics").unwrap();
    for counter in [
        "sluice_isr_shrinks_total",
        "sluice_isr_expands_total",
        "sluice_replica_truncations_total",
        "sluice_unclean_leader_elections_total",
        "sluice_leader_elections_total",
        "sluice_log_recovery_truncated_bytes_total",
        "sluice_retention_segments_deleted_total",
    ] {
        assert_eq!(
            sluice_tests::raw::metric_value(&text, counter),
            Some(0.0),
            "{counter} at 0 on a fresh broker:\n{text}"
        );
    }
}
