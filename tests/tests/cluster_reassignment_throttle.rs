//! The reassignment throttle (`--reassignment-throttle-bytes-per-sec`): while a new replica
//! copies the log, the leader holds its fetches to the configured rate (counted in
//! `sluice_reassignment_throttled_fetches_total`), ordinary followers are not throttled,
//! and the move still completes with the new replica byte-identical to the leader.

use std::time::{Duration, Instant};

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiKey, BrokerId,
};
use sluice_tests::raw::{http_get, metric_sum, topic_name};
use sluice_tests::workload::numbered_values;
use sluice_tests::{Cluster, ClusterOptions};

const TOPIC: &str = "throttled-move";
const RATE: u64 = 256 * 1024;
const THROTTLED: &str = "sluice_reassignment_throttled_fetches_total";

#[test]
fn a_throttled_reassignment_copies_at_the_configured_rate_and_completes() {
    let mut cluster = Cluster::start(
        4,
        ClusterOptions {
            extra_args: vec![
                "--reassignment-throttle-bytes-per-sec".into(),
                RATE.to_string(),
            ],
            ..ClusterOptions::fast(2_000, 2_000)
        },
    );
    let before = cluster.create_one_partition_topic(TOPIC, 3, &[("min.insync.replicas", "2")]);
    let leader = before.leader.expect("a leader");
    // About 1.2 MB: several seconds of copying at the throttled rate.
    for i in 0..40 {
        let values: Vec<String> = numbered_values(&format!("b{i}"), 100)
            .into_iter()
            .map(|v| format!("{v}-{}", "x".repeat(280)))
            .collect();
        cluster.produce_acked_batch(TOPIC, 0, values);
    }
    let high_watermark = cluster.wait_for_high_watermark(TOPIC, 0, 4_000, Duration::from_secs(30));
    let log_bytes = cluster.log_bytes(leader, TOPIC, 0).len();
    let newcomer = cluster
        .ids()
        .into_iter()
        .find(|id| !before.replicas.contains(id))
        .unwrap();
    let mut target = before.replicas.clone();
    target.push(newcomer);

    let mut conn = cluster.connect(leader).expect("connect");
    conn.set_read_timeout(Duration::from_secs(30)).unwrap();
    let request = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![ReassignableTopic::default()
            .with_name(topic_name(TOPIC))
            .with_partitions(vec![ReassignablePartition::default()
                .with_partition_index(0)
                .with_replicas(Some(
                    target.iter().copied().map(BrokerId).collect(),
                ))])]);
    let started = Instant::now();
    let response: AlterPartitionReassignmentsResponse = conn
        .request(ApiKey::AlterPartitionReassignments, 0, &request)
        .expect("AlterPartitionReassignments response");
    assert_eq!(
        response.responses[0].partitions[0].error_code, 0,
        "{response:?}"
    );

    cluster.wait_for_partition(
        TOPIC,
        0,
        "the new replica in the ISR and the reassignment complete",
        Duration::from_secs(60),
        |s| s.replicas.len() == 4 && s.isr_is_full(),
    );
    let took = started.elapsed();
    let throttled = http_get(&cluster.broker(leader).metrics_address(), "/metrics")
        .map(|text| metric_sum(&text, THROTTLED))
        .unwrap_or(0.0);
    eprintln!("copied {log_bytes} bytes in {took:?} at a {RATE} B/s throttle; {throttled} fetches held back");
    assert!(
        throttled > 0.0,
        "the leader never held back the new replica's fetches"
    );
    assert!(
        log_bytes as u64 > RATE * 2,
        "the log ({log_bytes} bytes) must take longer than the one-second burst to copy"
    );
    cluster.assert_replicas_identical(TOPIC, 0, &target, high_watermark);
}
