//! A follower that stops fetching (SIGSTOP) leaves the ISR after replica.lag.time.max.ms,
//! and the partition keeps committing: with replication factor 3 and min.insync.replicas
//! 2, acks=all produces go on being acknowledged and the high watermark advances. After
//! SIGCONT the follower catches up and rejoins the ISR, and the three replicas end
//! byte-identical up to the high watermark.

use std::time::{Duration, Instant};

use sluice_client::Acks;
use sluice_tests::raw::{http_get, metric_sum};
use sluice_tests::workload::{
    acked_end_offset, producer_config, read_back, runtime, verify_acked, BackgroundProducer,
    ProduceSpec,
};
use sluice_tests::{Cluster, ClusterOptions};

const TOPIC: &str = "follower-stop";
const PREFIX: &str = "rec";
const LAG_MS: u64 = 2_000;
/// Longer than the test keeps the follower stopped, so that the ISR shrink comes from the
/// leader's lag check, not from the controller fencing the stopped broker.
const SESSION_TIMEOUT_MS: u64 = 8_000;

#[test]
fn a_stopped_follower_leaves_the_isr_and_the_high_watermark_keeps_advancing() {
    let mut cluster = Cluster::start(3, ClusterOptions::fast(SESSION_TIMEOUT_MS, LAG_MS));
    let state = cluster.create_one_partition_topic(TOPIC, 3, &[("min.insync.replicas", "2")]);
    let leader = state.leader.expect("a leader");
    // A follower that is not the active controller: its stop then tests the lag check
    // alone, not a controller failover too.
    let follower = cluster.follower_not_controller(&state);

    let runtime = runtime();
    let config = producer_config(&cluster.bootstrap(), Acks::All);
    let mut producer = BackgroundProducer::start(
        &runtime,
        ProduceSpec {
            records_per_second: Some(2_000),
            ..ProduceSpec::new(TOPIC, 0, PREFIX, 1_000_000, config)
        },
    );
    producer
        .wait_for_acked(2_000, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("before the stop: {e}\n{}", cluster.logs()));

    let stopped_at = Instant::now();
    cluster.sigstop(follower);
    let shrunk = cluster.wait_for_partition(
        TOPIC,
        0,
        "the stopped follower out of the ISR",
        Duration::from_secs(30),
        |s| !s.in_isr(follower) && s.leader == Some(leader),
    );
    let shrink_took = stopped_at.elapsed();
    eprintln!(
        "follower {follower} stopped; ISR {:?} after {shrink_took:?}",
        shrunk.isr
    );
    assert!(
        shrink_took >= Duration::from_millis(LAG_MS / 2),
        "the follower left the ISR {shrink_took:?} after it stopped, well before replica.lag.time.max.ms ({LAG_MS} ms)"
    );
    assert!(
        shrink_took < Duration::from_millis(SESSION_TIMEOUT_MS),
        "the follower left the ISR only after {shrink_took:?}: that is session fencing \
         ({SESSION_TIMEOUT_MS} ms), not the leader's lag check ({LAG_MS} ms)"
    );
    // Still registered and unfenced (Metadata lists only unfenced brokers): the leader
    // removed it for lagging, not the controller for a lost session.
    assert!(
        cluster
            .brokers_listed_by(leader)
            .is_some_and(|brokers| brokers.contains(&follower)),
        "the stopped follower was already fenced when it left the ISR"
    );
    assert_eq!(
        shrunk.isr.len(),
        2,
        "only the stopped follower leaves: {shrunk:?}"
    );
    // The leader's /metrics shows it: the ISR of two and the stopped follower's lag.
    let lag_series = format!(
        "sluice_replica_lag_ms{{topic=\"{TOPIC}\",partition=\"0\",replica=\"{follower}\"}}"
    );
    let isr_series = format!("sluice_partition_isr_size{{topic=\"{TOPIC}\",partition=\"0\"}}");
    cluster.wait_for(
        "the leader's metrics to show the ISR of two and the stopped follower lagging",
        Duration::from_secs(10),
        |c| {
            let text = http_get(&c.broker(leader).metrics_address(), "/metrics").ok()?;
            let lag = metric_sum(&text, &lag_series);
            let isr = metric_sum(&text, &isr_series);
            (isr == 2.0 && lag >= LAG_MS as f64).then_some(())
        },
    );

    // acks=all keeps working on the ISR of two, and the high watermark moves.
    let hw_at_shrink = cluster.wait_for(
        "a high watermark from the leader",
        Duration::from_secs(10),
        |c| c.high_watermark(TOPIC, 0),
    );
    let acked_at_shrink = producer.acked();
    producer
        .wait_for_acked(acked_at_shrink + 2_000, Duration::from_secs(30))
        .unwrap_or_else(|e| {
            panic!(
                "acks=all with 2 of 3 replicas in the ISR (min ISR 2), {acked_at_shrink} acked at the shrink: {e}\n{}",
                cluster.logs()
            )
        });
    cluster.wait_for(
        "the high watermark to advance past its value at the shrink",
        Duration::from_secs(10),
        |c| c.high_watermark(TOPIC, 0).filter(|&hw| hw > hw_at_shrink),
    );

    cluster.sigcont(follower);
    cluster.wait_for_partition(
        TOPIC,
        0,
        "the resumed follower back in the ISR",
        Duration::from_secs(60),
        |s| s.isr_is_full(),
    );

    producer.stop();
    let outcomes = producer
        .finish(Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    assert!(
        producer.failed() == 0,
        "no produce may fail while a quorum of the ISR is alive: first errors {:?}",
        producer.first_errors(5)
    );
    let needed = acked_end_offset(&outcomes).unwrap_or(0);
    let (end_offset, records) = read_back(&runtime, &mut cluster, TOPIC, 0, needed);
    // No leader change and no error: no retries, so no duplicates either.
    let verified = verify_acked(PREFIX, &outcomes, &records, &[], 1)
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    let compared = cluster.assert_replicas_identical(TOPIC, 0, &[1, 2, 3], end_offset);
    eprintln!("{verified:?}; {compared} bytes identical on all three replicas");
}
