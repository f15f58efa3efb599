//! The fault harness against Apache Kafka 4.1.1 (issue 13's comparison): the same workload
//! (acks=all producers on 3 partitions, replication factor 3, min ISR 2, an idempotent Java
//! producer, two group members),
//! the same seeded nemesis and the same checker as `chaos_crash.rs`, on a 3-node KRaft
//! Kafka cluster started from the jars `scripts/test.sh` provisions, with failure detection
//! as fast as the Sluice runs' (2 s sessions and replica lag). Process faults only (kill -9,
//! SIGSTOP past the session, SIGTERM and restart, rolling restarts) and the admin nemesis; the network lab,
//! power cuts and clock jumps are Sluice-only. The printed line compares with
//! `chaos_crash`'s: acknowledged writes, group commits, and the longest time a partition
//! went without an acknowledgement, overall and per fault.

use sluice_tests::chaos::nemesis::PROCESS_FAULTS;
use sluice_tests::chaos::run::{assert_clean, run_on, RunSpec};
use sluice_tests::kafka_cluster::KafkaCluster;

#[test]
fn kafka_loses_no_acknowledged_write_under_the_same_process_faults() {
    // chaos_crash's list: with the same seed, the same faults in the same order.
    let nemeses = PROCESS_FAULTS.to_vec();
    let spec = RunSpec {
        group_members: 2,
        idempotent_producers: 1,
        ..RunSpec::from_env("kafka-crash", 13, 30, nemeses, false)
    };
    let mut kafka = KafkaCluster::start(3);
    let outcome = run_on(&mut kafka, &spec);
    assert_clean(&spec, &outcome);
}
