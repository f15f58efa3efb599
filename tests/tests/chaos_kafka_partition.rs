//! The fault harness's network faults against Apache Kafka 4.1.1 (issue 13's comparison in
//! the same namespaces): `chaos_partition.rs`'s workload (acks=all producers on 3
//! partitions, replication factor 3, min ISR 2, two group members), nemesis list and seed
//! (isolation, a node split from the others while clients reach it, one-way drops, a
//! bridge, packet loss, delay and reordering, kill -9) and checker, on a 3-node KRaft Kafka
//! cluster whose nodes each run in their own namespace of a network lab (needs root, as CI
//! runs), with failure detection as fast as the Sluice runs' (2 s sessions and replica
//! lag). The printed line compares with `chaos_partition`'s.

use std::sync::Arc;

use sluice_tests::chaos::nemesis::NETWORK_FAULTS;
use sluice_tests::chaos::run::{assert_clean, run_on, RunSpec};
use sluice_tests::kafka_cluster::KafkaCluster;
use sluice_tests::netns::NetLab;

#[test]
fn kafka_loses_no_acknowledged_write_under_the_same_network_faults() {
    // chaos_partition's list: with the same seed, the same faults in the same order.
    let nemeses = NETWORK_FAULTS.to_vec();
    let spec = RunSpec {
        group_members: 2,
        ..RunSpec::from_env("kafka-partition", 21, 20, nemeses, true)
    };
    let lab = Arc::new(NetLab::create(spec.nodes).expect("create the network lab (needs root)"));
    let mut kafka = KafkaCluster::start_in(spec.nodes, Some(lab));
    let outcome = run_on(&mut kafka, &spec);
    assert_clean(&spec, &outcome);
}
