//! A broker has log directories only for the partitions it hosts, and loses them when it
//! stops hosting one: three brokers, a topic whose partitions have two replicas each (so
//! every broker hosts about two thirds of them; three with `SLUICE_HOSTED_DIRS_RF=3`). Each broker's directories are exactly its
//! replicas'; a metadata change to another topic looks at that topic's partitions only
//! (`sluice_metadata_partitions_reconciled_total`); reassigning (up to 100) partitions away
//! from a broker removes their directories there (renamed to `-delete`, then deleted); deleting
//! the topic removes the rest.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiKey, BrokerId,
    DeleteTopicsRequest, DeleteTopicsResponse,
};
use sluice_tests::raw::{metric_value, topic_name};
use sluice_tests::{Cluster, ClusterOptions};

const TOPIC: &str = "hosted";
/// Partitions of the topic: 30, or `SLUICE_HOSTED_DIRS_PARTITIONS` for a bigger run (the
/// issue's 3,000 with three replicas each: `SLUICE_HOSTED_DIRS_PARTITIONS=3000
/// SLUICE_HOSTED_DIRS_RF=3 ./scripts/test.sh -p sluice-tests --test cluster_hosted_dirs`).
fn partitions() -> i32 {
    std::env::var("SLUICE_HOSTED_DIRS_PARTITIONS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(30)
}
/// Replicas per partition: 2 (so each broker hosts about two thirds of the partitions), or
/// `SLUICE_HOSTED_DIRS_RF` (the run uses 3: every broker hosts every partition until
/// the reassignment moves 100 of them away from one).
fn replication_factor() -> i16 {
    std::env::var("SLUICE_HOSTED_DIRS_RF")
        .ok()
        .and_then(|value| value.parse().ok())
        .filter(|rf| (1..=3).contains(rf))
        .unwrap_or(2)
}
const RECONCILED: &str = "sluice_metadata_partitions_reconciled_total";

/// The partition directories each broker should have: `TOPIC-p` for every p it is a
/// replica of, as the metadata says.
fn expected_dirs(cluster: &mut Cluster) -> BTreeMap<i32, Vec<String>> {
    let mut expected: BTreeMap<i32, Vec<String>> = cluster
        .ids()
        .into_iter()
        .map(|id| (id, Vec::new()))
        .collect();
    for partition in 0..partitions() {
        let state = cluster
            .partition_state_agreed(TOPIC, partition)
            .expect("the nodes agree on the partition");
        for replica in state.replicas {
            expected
                .get_mut(&replica)
                .expect("a known broker")
                .push(format!("{TOPIC}-{partition}"));
        }
    }
    for dirs in expected.values_mut() {
        dirs.sort();
    }
    expected
}

/// A broker's directories of `TOPIC`, and any directory waiting to be deleted.
fn topic_dirs(cluster: &Cluster, id: i32) -> Vec<String> {
    let prefix = format!("{TOPIC}-");
    cluster
        .partition_dirs(id)
        .into_iter()
        .filter(|dir| dir.starts_with(&prefix) || dir.ends_with("-delete"))
        .collect()
}

fn wait_for_dirs(cluster: &mut Cluster, expected: &BTreeMap<i32, Vec<String>>, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30 + partitions() as u64 / 20);
    let settled = cluster.poll_until(deadline, |c| {
        expected
            .iter()
            .all(|(id, dirs)| topic_dirs(c, *id) == *dirs)
            .then_some(())
    });
    if settled.is_none() {
        let found: BTreeMap<i32, Vec<String>> = expected
            .keys()
            .map(|&id| (id, topic_dirs(cluster, id)))
            .collect();
        panic!(
            "timed out waiting for {what}\nexpected {expected:?}\nfound    {found:?}\n{}",
            cluster.logs()
        );
    }
}

fn reconciled(cluster: &Cluster, id: i32) -> f64 {
    metric_value(&cluster.scrape(id), RECONCILED).unwrap_or(-1.0)
}

#[test]
fn brokers_hold_exactly_the_directories_of_their_replicas() {
    let mut cluster = Cluster::start(3, ClusterOptions::fast(3_000, 3_000));
    let ids = cluster.ids();
    cluster.create_topic(TOPIC, partitions(), replication_factor(), &[]);
    let expected = expected_dirs(&mut cluster);
    let hosted: usize = expected.values().map(Vec::len).sum();
    assert_eq!(
        hosted,
        partitions() as usize * replication_factor() as usize
    );
    for (id, dirs) in &expected {
        assert!(
            !dirs.is_empty() && (dirs.len() < partitions() as usize || replication_factor() == 3),
            "broker {id} hosts {} of {} partitions",
            dirs.len(),
            partitions()
        );
    }
    wait_for_dirs(
        &mut cluster,
        &expected,
        "each broker to hold its replicas' directories only",
    );

    // A change to another topic looks at that topic's partitions, not at the 30 others.
    let before: Vec<f64> = ids.iter().map(|&id| reconciled(&cluster, id)).collect();
    assert!(before.iter().all(|&count| count >= 30.0), "{before:?}");
    cluster.create_topic("other", 1, 3, &[]);
    let after: Vec<f64> = ids.iter().map(|&id| reconciled(&cluster, id)).collect();
    for ((id, before), after) in ids.iter().zip(&before).zip(&after) {
        let grew = after - before;
        assert!(
            (1.0..=5.0).contains(&grew),
            "broker {id}: creating a one-partition topic (and its ISR settling) looked at {grew} partitions"
        );
    }

    // Move (up to 100 of) the partitions broker `away` hosts to the other two brokers.
    let away = ids[0];
    let others: Vec<i32> = ids.iter().copied().filter(|&id| id != away).collect();
    let moved: Vec<i32> = (0..partitions())
        .filter(|p| expected[&away].contains(&format!("{TOPIC}-{p}")))
        .take(100)
        .collect();
    let request = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![ReassignableTopic::default()
            .with_name(topic_name(TOPIC))
            .with_partitions(
                moved
                    .iter()
                    .map(|&p| {
                        ReassignablePartition::default()
                            .with_partition_index(p)
                            .with_replicas(Some(others.iter().copied().map(BrokerId).collect()))
                    })
                    .collect(),
            )]);
    let controller = cluster.controller_id().expect("a controller");
    let mut conn = cluster.connect(controller).expect("connect");
    conn.set_read_timeout(Duration::from_secs(60)).unwrap();
    let response: AlterPartitionReassignmentsResponse = conn
        .request(ApiKey::AlterPartitionReassignments, 0, &request)
        .expect("AlterPartitionReassignments");
    let codes: BTreeSet<i16> = response.responses[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(codes, BTreeSet::from([0]), "{response:?}");
    cluster.wait_for(
        "the reassignments to complete",
        Duration::from_secs(60 + partitions() as u64 / 20),
        |c| {
            moved
                .iter()
                .all(|&p| {
                    c.partition_state_agreed(TOPIC, p)
                        .is_some_and(|state| !state.replicas.contains(&away) && state.isr_is_full())
                })
                .then_some(())
        },
    );
    let expected = expected_dirs(&mut cluster);
    for p in &moved {
        assert!(!expected[&away].contains(&format!("{TOPIC}-{p}")));
    }
    wait_for_dirs(
        &mut cluster,
        &expected,
        "the moved partitions' directories (and their -delete renames) to be gone from the broker they left",
    );

    // Deleting the topic removes every broker's directories of it.
    let request = DeleteTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![
            DeleteTopicState::default().with_name(Some(topic_name(TOPIC)))
        ]);
    let response: DeleteTopicsResponse = cluster
        .connect(controller)
        .expect("connect")
        .request(ApiKey::DeleteTopics, 6, &request)
        .expect("DeleteTopics");
    assert_eq!(response.responses[0].error_code, 0, "{response:?}");
    let none: BTreeMap<i32, Vec<String>> = ids.iter().map(|&id| (id, Vec::new())).collect();
    wait_for_dirs(
        &mut cluster,
        &none,
        "the deleted topic's directories to be gone",
    );
    for id in ids {
        assert_eq!(
            cluster.partition_dirs(id),
            ["other-0"],
            "broker {id} keeps the other topic's replica"
        );
    }
}
