//! A consumer reading partitions led by different brokers is not held back by a broker that
//! has nothing new: with a long `fetch_max_wait_ms`, a caught-up broker holds its Fetch for
//! that long, and the records another broker has must come back without waiting for it.

use std::time::{Duration, Instant};

use sluice_client::{Consumer, ConsumerConfig, SeekTo};
use sluice_tests::workload::{numbered_values, runtime};
use sluice_tests::{Cluster, ClusterOptions};

const TOPIC: &str = "two-leaders";
/// Far longer than the deadline the test allows for records to arrive.
const FETCH_MAX_WAIT_MS: u64 = 30_000;

#[test]
fn records_from_one_broker_are_not_held_back_by_another_brokers_long_poll() {
    let mut cluster = Cluster::start(3, ClusterOptions::fast(5_000, 5_000));
    cluster.create_topic(TOPIC, 2, 1, &[]);
    let leaders: Vec<i32> = (0..2)
        .map(|p| {
            cluster
                .partition_state_agreed(TOPIC, p)
                .and_then(|s| s.leader)
                .expect("a leader")
        })
        .collect();
    assert_ne!(
        leaders[0], leaders[1],
        "the two partitions have different leaders"
    );

    let runtime = runtime();
    let mut config = ConsumerConfig::new(cluster.bootstrap());
    config.fetch_max_wait_ms = FETCH_MAX_WAIT_MS;
    let mut consumer = runtime.block_on(Consumer::new(config)).expect("consumer");
    runtime
        .block_on(consumer.assign(vec![(TOPIC.to_string(), 0), (TOPIC.to_string(), 1)]))
        .expect("assign");
    for p in 0..2 {
        runtime
            .block_on(consumer.seek(TOPIC, p, SeekTo::Earliest))
            .expect("seek");
    }
    // Partition 0 stays empty; partition 1 gets records.
    cluster.produce_acked_batch(TOPIC, 1, numbered_values("data", 10));

    let started = Instant::now();
    let mut got = 0;
    while got < 10 && started.elapsed() < Duration::from_secs(60) {
        match runtime.block_on(consumer.poll(Duration::from_secs(60))) {
            Ok(records) => got += records.iter().filter(|r| r.partition == 1).count(),
            Err(e) if e.is_retriable() => continue,
            Err(e) => panic!("poll: {e}"),
        }
    }
    let took = started.elapsed();
    assert_eq!(got, 10, "partition 1's records within {took:?}");
    assert!(
        took < Duration::from_secs(10),
        "partition 1's records took {took:?}: they waited for partition 0's long poll ({FETCH_MAX_WAIT_MS} ms)"
    );
}
