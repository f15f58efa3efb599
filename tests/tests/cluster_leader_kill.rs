//! `kill -9` of a partition's leader in the middle of an acks=all produce stream (3 brokers,
//! replication factor 3, min.insync.replicas 2): every acknowledged record is read back at
//! the offset its acknowledgement reported, nothing that was not sent appears, only records
//! whose acknowledgement was still outstanding at the kill may appear twice (retries of
//! writes that had landed), and once the killed broker is back in the ISR the three
//! replicas hold the same bytes up to the high watermark.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use sluice_client::Acks;
use sluice_tests::workload::{
    acked_end_offset, index_of, producer_config, read_back, runtime, verify_acked,
    BackgroundProducer, Outcome, ProduceSpec,
};
use sluice_tests::{Cluster, ClusterOptions};

const TOPIC: &str = "leader-kill";
const RECORDS: usize = 100_000;
const PREFIX: &str = "rec";

#[test]
fn acknowledged_records_survive_a_leader_kill_9() {
    let mut cluster = Cluster::start(3, ClusterOptions::fast(2_000, 2_000));
    let before = cluster.create_one_partition_topic(TOPIC, 3, &[("min.insync.replicas", "2")]);
    let leader = before.leader.expect("create_topic waits for a leader");

    let runtime = runtime();
    let config = producer_config(&cluster.bootstrap(), Acks::All);
    let mut producer = BackgroundProducer::start(
        &runtime,
        ProduceSpec {
            // The second half waits for the kill, so records are sent before, during and
            // after it whatever the speed of the machine.
            gate_at: Some(RECORDS / 2),
            ..ProduceSpec::new(TOPIC, 0, PREFIX, RECORDS, config)
        },
    );

    // Kill once a tenth is acknowledged: between a tenth and half of the records are then
    // sent, some of them in flight.
    producer
        .wait_for_acked(RECORDS / 10, Duration::from_secs(90))
        .unwrap_or_else(|e| panic!("before the kill: {e}\n{}", cluster.logs()));
    let acked_before_kill: HashSet<usize> = producer
        .outcomes()
        .iter()
        .enumerate()
        .filter(|(_, o)| matches!(o, Outcome::Acked(_)))
        .map(|(i, _)| i)
        .collect();
    cluster.kill9(leader);
    let sent_at_kill = producer.sent();
    producer.open_gate();
    eprintln!(
        "killed leader {leader} with {} of {sent_at_kill} sent records acknowledged",
        acked_before_kill.len()
    );

    let after = cluster.wait_for_partition(
        TOPIC,
        0,
        "a new leader with a higher leader epoch",
        Duration::from_secs(30),
        |s| s.leader.is_some_and(|l| l != leader) && s.leader_epoch > before.leader_epoch,
    );
    eprintln!("new leader: {after:?}");

    let outcomes = producer
        .finish(Duration::from_secs(240))
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    let failed = producer.first_errors(5);
    assert!(
        failed.is_empty() && outcomes.len() == RECORDS,
        "with 2 of 3 replicas alive and min ISR 2 every record must be acknowledged in the end: {} sent, first errors {failed:?}\n{}",
        outcomes.len(),
        cluster.logs()
    );
    let end_offset = acked_end_offset(&outcomes).expect("records were acknowledged");

    cluster.restart(leader);
    cluster.wait_for_partition(
        TOPIC,
        0,
        "the restarted broker back in the ISR",
        Duration::from_secs(60),
        |s| s.isr_is_full() && s.in_isr(leader),
    );
    let (high_watermark, records) = read_back(&runtime, &mut cluster, TOPIC, 0, end_offset);
    let verified = verify_acked(PREFIX, &outcomes, &records, &[], 2)
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));

    // Duplicates come only from retries, and a record acknowledged before the kill was not
    // retried.
    let mut copies: HashMap<usize, usize> = HashMap::new();
    for (_, value) in &records {
        if let Some(i) = value.as_deref().and_then(|v| index_of(PREFIX, v)) {
            *copies.entry(i).or_default() += 1;
        }
    }
    let mut duplicated_early: Vec<usize> = copies
        .iter()
        .filter(|(i, n)| **n > 1 && acked_before_kill.contains(i))
        .map(|(i, _)| *i)
        .collect();
    duplicated_early.sort_unstable();
    assert!(
        duplicated_early.is_empty(),
        "records acknowledged before the kill appear twice (first: {:?})",
        &duplicated_early[..duplicated_early.len().min(10)]
    );

    let compared = cluster.assert_replicas_identical(TOPIC, 0, &[1, 2, 3], high_watermark);
    eprintln!(
        "{verified:?}; high watermark {high_watermark}; {compared} bytes identical on all three replicas"
    );
}
