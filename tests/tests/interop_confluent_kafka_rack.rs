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

use sluice_tests::rack_reads::{self, racked_cluster, summary_field};
use sluice_tests::{repo_root, venv_python};

const TOPIC: &str = "confluent-rack";
const PREFIX: &str = "rack";
const BATCHES: usize = 50;
const RECORDS_PER_BATCH: usize = 100;
/// Bytes b'p' after each value's number (see the script's record format).
const PAD: usize = 100;
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

/// Record `i`'s value, as the script expects it.
fn value(i: usize) -> String {
    format!("{PREFIX}-{i}-{}", "p".repeat(PAD))
}

#[test]
fn confluent_kafka_with_client_rack_reads_from_the_follower_in_its_rack() {
    let python = venv_python();
    let mut cluster = racked_cluster(3);
    let prepared = rack_reads::prepare(&mut cluster, TOPIC, BATCHES, RECORDS_PER_BATCH, value);
    let (leader, follower, rack, count) = (
        prepared.leader,
        prepared.follower,
        prepared.rack.clone(),
        prepared.count,
    );

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
    let (output, summary) = prepared.run_reader(
        &cluster,
        "confluent_rack_fetch.py",
        &mut command,
        SCRIPT_TIMEOUT,
        debug.is_some(),
    );
    eprintln!("{summary} ({:.1}s)", output.elapsed.as_secs_f64());

    let (_, context) = prepared.assert_read_from_follower(&cluster, &summary);
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
