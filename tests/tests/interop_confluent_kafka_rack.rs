//! Follower reads (KIP-392) with confluent-kafka (librdkafka, from the venv that
//! `scripts/test.sh` creates): three brokers in racks rack-1..3, a topic with replication
//! factor 3 and one partition. The test produces the records itself, finds a follower and
//! its rack in Metadata, and runs `tests/interop/confluent_rack_fetch.py` with
//! `client.rack` set to that rack: the script reads every record back (assign from the
//! beginning, no group). The follower's `sluice_fetch_bytes_out_total{fetcher="consumer"}`
//! grows by at least the records' size, while the leader's stays small: it only answers the
//! first fetch with the redirect (preferred_read_replica, no records).
//!
//! `SLUICE_RDKAFKA_DEBUG=fetch,broker` runs the script with librdkafka's debug log and
//! prints it.

use std::process::Command;
use std::time::Duration;

use sluice_tests::raw::{http_get, metric_sum};
use sluice_tests::{repo_root, run_program, venv_python, Cluster, ClusterOptions};

const TOPIC: &str = "confluent-rack";
const PREFIX: &str = "rack";
const BATCHES: usize = 50;
const RECORDS_PER_BATCH: usize = 100;
/// Bytes b'p' after each value's number (see the script's record format).
const PAD: usize = 100;
const CONSUMER_BYTES: &str = "sluice_fetch_bytes_out_total{fetcher=\"consumer\"}";
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

fn rack_of(id: i32) -> String {
    format!("rack-{id}")
}

/// Record `i`'s value, as the script expects it.
fn value(i: usize) -> String {
    format!("{PREFIX}-{i}-{}", "p".repeat(PAD))
}

fn consumer_bytes(cluster: &Cluster, node: i32) -> f64 {
    http_get(&cluster.broker(node).metrics_address(), "/metrics")
        .map(|text| metric_sum(&text, CONSUMER_BYTES))
        .unwrap_or_else(|e| panic!("metrics of node {node}: {e}"))
}

/// The SUMMARY field `name=value`.
fn summary_field<'a>(summary: &'a str, name: &str) -> Option<&'a str> {
    summary
        .split_whitespace()
        .find_map(|word| word.strip_prefix(name)?.strip_prefix('='))
}

#[test]
fn confluent_kafka_with_client_rack_reads_from_the_follower_in_its_rack() {
    let python = venv_python();
    let mut cluster = Cluster::start(
        3,
        ClusterOptions {
            racks: (1..=3).map(rack_of).collect(),
            ..ClusterOptions::fast(2_000, 2_000)
        },
    );
    let state = cluster.create_one_partition_topic(TOPIC, 3, &[("min.insync.replicas", "2")]);
    let leader = state.leader.expect("a leader");
    let follower = state.followers()[0];

    // The follower's rack, as a client learns it: from Metadata.
    let metadata = cluster
        .metadata_from(leader, Some(&[TOPIC]))
        .expect("metadata");
    let rack = metadata
        .brokers
        .iter()
        .find(|b| b.node_id.0 == follower)
        .and_then(|b| b.rack.as_ref())
        .map(|r| r.to_string())
        .unwrap_or_else(|| panic!("broker {follower} has no rack in Metadata: {metadata:?}"));
    assert_eq!(rack, rack_of(follower));

    let count = BATCHES * RECORDS_PER_BATCH;
    for b in 0..BATCHES {
        let values: Vec<String> = (b * RECORDS_PER_BATCH..(b + 1) * RECORDS_PER_BATCH)
            .map(value)
            .collect();
        let batch = cluster.produce_acked_batch(TOPIC, 0, values);
        assert_eq!(
            batch.base_offset,
            (b * RECORDS_PER_BATCH) as i64,
            "record i at offset i (no retried duplicate)"
        );
    }
    cluster.wait_for_high_watermark(TOPIC, 0, count as i64, Duration::from_secs(30));
    let records_bytes = cluster.log_bytes(leader, TOPIC, 0).len() as f64;
    let before: Vec<f64> = cluster
        .ids()
        .into_iter()
        .map(|id| consumer_bytes(&cluster, id))
        .collect();

    let mut command = Command::new(python);
    command
        .arg(repo_root().join("tests/interop/confluent_rack_fetch.py"))
        .arg("--bootstrap")
        .arg(cluster.bootstrap())
        .arg("--topic")
        .arg(TOPIC)
        .arg("--rack")
        .arg(&rack)
        .arg("--prefix")
        .arg(PREFIX)
        .arg("--count")
        .arg(count.to_string())
        .arg("--pad")
        .arg(PAD.to_string());
    // librdkafka's debug log (e.g. SLUICE_RDKAFKA_DEBUG=fetch,broker), printed with the
    // script's output even when the test passes.
    let debug = std::env::var("SLUICE_RDKAFKA_DEBUG").ok();
    if let Some(debug) = &debug {
        command.arg("--debug").arg(debug);
    }
    let output = run_program(&mut command, None, SCRIPT_TIMEOUT);
    if debug.is_some() {
        eprintln!("{}", output.describe());
    }
    let stdout = output.stdout_lossy();
    let summary = stdout.lines().find(|l| l.starts_with("SUMMARY"));
    let summary = match summary {
        Some(summary) if output.success() => summary.to_string(),
        _ => panic!(
            "confluent_rack_fetch.py failed (leader {leader}, follower {follower} in {rack})\n{}\n{}",
            output.describe(),
            cluster.logs()
        ),
    };
    eprintln!("{summary} ({:.1}s)", output.elapsed.as_secs_f64());

    let grown: Vec<f64> = cluster
        .ids()
        .into_iter()
        .zip(&before)
        .map(|(id, before)| consumer_bytes(&cluster, id) - before)
        .collect();
    let grown_on = |id: i32| grown[(id - 1) as usize];
    let context = format!(
        "leader {leader}, follower {follower} ({rack}); records {records_bytes} bytes; consumer bytes served per node {grown:?}; {summary}"
    );
    eprintln!("{context}");
    assert!(
        grown_on(follower) >= records_bytes,
        "the follower in the consumer's rack served every record: {context}\n{}",
        cluster.logs()
    );
    assert!(
        grown_on(leader) < records_bytes / 10.0,
        "the leader only redirected the consumer: {context}\n{}",
        cluster.logs()
    );
    // librdkafka starts at the leader (its statistics may catch that moment) and moves to
    // the follower the leader names; no other broker serves the partition.
    let fetched_from: Vec<i32> = summary_field(&summary, "fetched_from")
        .unwrap_or_default()
        .split(',')
        .filter_map(|id| id.parse().ok())
        .collect();
    assert_eq!(
        fetched_from.last(),
        Some(&follower),
        "librdkafka's statistics show the partition fetched from the follower last: {context}"
    );
    assert!(
        fetched_from
            .iter()
            .all(|id| *id == leader || *id == follower),
        "only the leader and the follower serve the partition: {context}"
    );
}
