//! `--metrics-per-partition`: on by default, per-partition gauges appear in `/metrics`;
//! turned off, only the broker-wide ones do (bounded label cardinality).

use std::time::{Duration, Instant};

use sluice_tests::raw::{http_get, produce_batch, value_batch, RawConnection};
use sluice_tests::{Broker, BrokerOptions};

const TOPIC: &str = "cardinality";

/// Produce to the topic, then wait (bounded) until the once-a-second gauges show the
/// partition led, and return the metrics text.
fn metrics_after_produce(broker: &Broker) -> String {
    let mut conn = RawConnection::connect(&broker.bootstrap()).unwrap();
    let (code, _) = produce_batch(&mut conn, TOPIC, 0, value_batch(&["a", "b"]), 1);
    assert_eq!(code, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = http_get(&broker.metrics_address(), "/metrics").unwrap_or_default();
        if text.lines().any(|l| l == "sluice_partitions_led 1") {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no sluice_partitions_led 1 in\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn per_partition_gauges_follow_the_switch() {
    let on = Broker::start();
    let text = metrics_after_produce(&on);
    assert!(
        text.contains("sluice_partition_high_watermark{topic=\"cardinality\",partition=\"0\"}"),
        "per-partition gauges by default:\n{text}"
    );

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
}
