//! CreatePartitions on a cluster (`sluice topic alter --partitions`): the controller places
//! the new partitions' replicas across the brokers, spreading leaders; every broker learns
//! them; each new partition gets a full ISR and takes acks=all writes on its leader.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use sluice_tests::workload::numbered_values;
use sluice_tests::{run_program, sluice_binary, Cluster, ClusterOptions};

const TOPIC: &str = "grow";

#[test]
fn new_partitions_are_placed_across_the_cluster_and_serve_writes() {
    let mut cluster = Cluster::start(3, ClusterOptions::fast(2_000, 2_000));
    cluster.create_topic(TOPIC, 2, 3, &[("min.insync.replicas", "2")]);

    let output = run_program(
        Command::new(sluice_binary()).args([
            "--bootstrap",
            &cluster.bootstrap(),
            "topic",
            "alter",
            TOPIC,
            "--partitions",
            "6",
        ]),
        None,
        Duration::from_secs(60),
    );
    assert!(
        output.success(),
        "{}\n{}",
        output.describe(),
        cluster.logs()
    );

    let mut leaders: BTreeMap<i32, usize> = BTreeMap::new();
    for partition in 0..6 {
        let state = cluster.wait_for(
            "every live node to agree on the new partition with a leader and a full ISR",
            Duration::from_secs(30),
            |c| {
                c.partition_state_agreed(TOPIC, partition)
                    .filter(|s| s.leader.is_some() && s.replicas.len() == 3 && s.isr_is_full())
            },
        );
        *leaders.entry(state.leader.unwrap()).or_default() += 1;
    }
    assert_eq!(
        leaders.len(),
        3,
        "leaders spread over the three brokers: {leaders:?}"
    );
    assert!(
        leaders.values().all(|n| *n == 2),
        "two leaderships each: {leaders:?}"
    );

    for partition in 2..6 {
        let batch = cluster.produce_acked_batch(
            TOPIC,
            partition,
            numbered_values(&format!("p{partition}"), 10),
        );
        assert_eq!(
            batch.base_offset, 0,
            "the first records of new partition {partition}"
        );
        let high_watermark =
            cluster.wait_for_high_watermark(TOPIC, partition, 10, Duration::from_secs(30));
        assert!(high_watermark >= 10);
    }
}
