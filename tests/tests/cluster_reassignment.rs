//! Reassignment (KIP-455) while an acks=all producer writes: a partition on brokers
//! {A, B, C} (A leading) moves to {B, C, D}. The new replica D copies the log from the
//! leader's log start while writes go on, joins the ISR, and only then is A dropped:
//! leadership moves to the target, A deletes its copy, and D ends byte-identical to the
//! leader. No acknowledged record is lost; only records whose acknowledgment was still
//! outstanding when leadership moved may appear twice (our producer is not idempotent), none
//! acknowledged before the reassignment started.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiKey, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};
use sluice_client::Acks;
use sluice_tests::raw::topic_name;
use sluice_tests::workload::{
    acked_end_offset, index_of, producer_config, read_back, runtime, verify_acked,
    BackgroundProducer, Outcome, ProduceSpec,
};
use sluice_tests::{Cluster, ClusterOptions};

const TOPIC: &str = "reassign";
const PREFIX: &str = "rec";

fn reassign(cluster: &Cluster, node: i32, target: Vec<i32>) -> i16 {
    let mut conn = cluster.connect(node).expect("connect");
    conn.set_read_timeout(Duration::from_secs(30)).unwrap();
    let request = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![ReassignableTopic::default()
            .with_name(topic_name(TOPIC))
            .with_partitions(vec![ReassignablePartition::default()
                .with_partition_index(0)
                .with_replicas(Some(
                    target.into_iter().map(BrokerId).collect(),
                ))])]);
    let response: AlterPartitionReassignmentsResponse = conn
        .request(ApiKey::AlterPartitionReassignments, 0, &request)
        .expect("AlterPartitionReassignments response");
    assert_eq!(response.error_code, 0, "{response:?}");
    response.responses[0].partitions[0].error_code
}

fn ongoing(cluster: &Cluster, node: i32) -> usize {
    let mut conn = cluster.connect(node).expect("connect");
    let request = ListPartitionReassignmentsRequest::default().with_timeout_ms(10_000);
    let response: ListPartitionReassignmentsResponse = conn
        .request(ApiKey::ListPartitionReassignments, 0, &request)
        .expect("ListPartitionReassignments response");
    response.topics.iter().map(|t| t.partitions.len()).sum()
}

#[test]
fn a_partition_moves_to_new_brokers_while_acks_all_writes_go_on() {
    let mut cluster = Cluster::start(4, ClusterOptions::fast(2_000, 2_000));
    let before = cluster.create_one_partition_topic(TOPIC, 3, &[("min.insync.replicas", "2")]);
    let leader = before.leader.expect("a leader");
    let newcomer = cluster
        .ids()
        .into_iter()
        .find(|id| !before.replicas.contains(id))
        .expect("a broker outside the replica set");
    let mut target: Vec<i32> = before
        .replicas
        .iter()
        .copied()
        .filter(|r| *r != leader)
        .collect();
    target.push(newcomer);

    let runtime = runtime();
    let mut producer = BackgroundProducer::start(
        &runtime,
        ProduceSpec {
            records_per_second: Some(5_000),
            ..ProduceSpec::new(
                TOPIC,
                0,
                PREFIX,
                1_000_000,
                producer_config(&cluster.bootstrap(), Acks::All),
            )
        },
    );
    producer
        .wait_for_acked(5_000, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("before the move: {e}\n{}", cluster.logs()));
    let acked_before_move: HashSet<usize> = producer
        .outcomes()
        .iter()
        .enumerate()
        .filter(|(_, o)| matches!(o, Outcome::Acked(_)))
        .map(|(i, _)| i)
        .collect();

    assert_eq!(
        reassign(&cluster, leader, target.clone()),
        0,
        "reassignment accepted"
    );
    let done = cluster.wait_for_partition(
        TOPIC,
        0,
        "the reassignment to complete (target replicas, all in the ISR)",
        Duration::from_secs(60),
        |s| {
            let mut replicas = s.replicas.clone();
            replicas.sort_unstable();
            let mut want = target.clone();
            want.sort_unstable();
            replicas == want && s.isr_is_full() && s.leader.is_some()
        },
    );
    assert_ne!(
        done.leader,
        Some(leader),
        "the removed broker no longer leads"
    );
    assert!(done.leader_epoch > before.leader_epoch);
    // Each broker answers from its own copy of the metadata, which may trail by a moment.
    let new_leader = done.leader.unwrap();
    cluster.wait_for(
        "the new leader to list no reassignment any more",
        Duration::from_secs(10),
        |c| (ongoing(c, new_leader) == 0).then_some(()),
    );

    // Writes go on through the move.
    let acked_at_move = producer.acked();
    producer
        .wait_for_acked(acked_at_move + 5_000, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("after the move: {e}\n{}", cluster.logs()));
    producer.stop();
    let outcomes = producer
        .finish(Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    let needed = acked_end_offset(&outcomes).unwrap_or(0);
    let (high_watermark, records) = read_back(&runtime, &mut cluster, TOPIC, 0, needed);
    let verified = verify_acked(PREFIX, &outcomes, &records, &[], 2)
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    let mut copies: HashMap<usize, usize> = HashMap::new();
    for (_, value) in &records {
        if let Some(i) = value.as_deref().and_then(|v| index_of(PREFIX, v)) {
            *copies.entry(i).or_default() += 1;
        }
    }
    let duplicated_early: Vec<usize> = copies
        .iter()
        .filter(|(i, n)| **n > 1 && acked_before_move.contains(i))
        .map(|(i, _)| *i)
        .collect();
    assert!(
        duplicated_early.is_empty(),
        "records acknowledged before the move appear twice: {duplicated_early:?}"
    );

    // The new replica holds the leader's bytes; the removed one holds nothing, not even
    // the directory.
    let compared = cluster.assert_replicas_identical(TOPIC, 0, &target, high_watermark);
    let removed_dir = format!("{TOPIC}-0");
    cluster.wait_for(
        "the removed broker to delete its copy",
        Duration::from_secs(30),
        |c| {
            let dirs = c.partition_dirs(leader);
            (!dirs.contains(&removed_dir) && !dirs.iter().any(|d| d.ends_with("-delete")))
                .then_some(())
        },
    );
    eprintln!(
        "{verified:?}; {compared} bytes identical on {target:?}; broker {leader}'s copy deleted"
    );
}
