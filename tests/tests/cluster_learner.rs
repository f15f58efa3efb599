//! A broker that is not a controller voter joins an existing cluster as a metadata learner
//! ("a new node joins by being given the same voters list"): four brokers, nodes 1..=3 the
//! `--controller-voters`, node 4 only given that list. Node 4 follows the metadata log (its
//! Metadata lists the four brokers, a voter as controller, and the topics the voters
//! created, as the voters describe them), replicates a topic with replication factor 4 (it
//! is in every ISR and its logs are byte-identical to the leaders' up to the high
//! watermark), is fenced out of the ISRs after `kill -9`, and after a restart rejoins them
//! and catches up.

use std::time::Duration;

use sluice_tests::workload::numbered_values;
use sluice_tests::{Cluster, ClusterOptions};

/// A topic the voters create, to be found in the learner's metadata.
const EARLY_TOPIC: &str = "learner-early";
const EARLY_PARTITIONS: i32 = 3;
/// The topic the learner replicates; with as many partitions as brokers, it leads some and
/// follows others.
const TOPIC: &str = "learner-rf4";
const PARTITIONS: i32 = 4;
const NODES: usize = 4;
const VOTERS: usize = 3;
const LEARNER: i32 = 4;
const SESSION_TIMEOUT_MS: u64 = 2_000;
const LAG_MS: u64 = 2_000;
const BATCHES: usize = 10;
const BATCH_RECORDS: usize = 50;

/// The values of one batch: `<prefix>-<partition>-<batch>-<i>`.
fn values(prefix: &str, partition: i32, batch: usize) -> Vec<String> {
    numbered_values(&format!("{prefix}-{partition}-{batch}"), BATCH_RECORDS)
}

/// Produce `BATCHES` batches with acks=all to every partition; returns, per partition, the
/// offset just past its last batch.
fn produce_batches(cluster: &mut Cluster, prefix: &str) -> Vec<i64> {
    (0..PARTITIONS)
        .map(|partition| {
            let mut end = 0;
            for batch in 0..BATCHES {
                end = cluster
                    .produce_acked_batch(TOPIC, partition, values(prefix, partition, batch))
                    .end_offset();
            }
            end
        })
        .collect()
}

/// Wait until every partition's high watermark covers its `ends`; returns them.
fn wait_committed(cluster: &mut Cluster, ends: &[i64]) -> Vec<i64> {
    (0..PARTITIONS)
        .zip(ends)
        .map(|(partition, &needed)| {
            cluster.wait_for_high_watermark(TOPIC, partition, needed, Duration::from_secs(30))
        })
        .collect()
}

/// Every replica's log equals its leader's up to the high watermark, for every partition
/// (the leader first, so the compared length is taken from its log).
fn assert_all_identical(cluster: &mut Cluster, high_watermarks: &[i64], when: &str) {
    for (partition, &high_watermark) in (0..PARTITIONS).zip(high_watermarks) {
        let state = cluster
            .partition_state(TOPIC, partition)
            .unwrap_or_else(|| {
                panic!(
                    "no live node describes {TOPIC}-{partition}\n{}",
                    cluster.logs()
                )
            });
        let leader = state.leader.expect("a leader");
        let mut nodes = vec![leader];
        nodes.extend(state.followers());
        assert_eq!(nodes.len(), NODES, "{state:?}");
        let compared = cluster.assert_replicas_identical(TOPIC, partition, &nodes, high_watermark);
        eprintln!(
            "{when}: {TOPIC}-{partition} (leader {leader}, ISR {:?}): {compared} bytes identical on all four replicas up to {high_watermark}",
            state.isr
        );
    }
}

#[test]
fn a_non_voter_joins_as_a_learner_replicates_and_rejoins_after_a_kill() {
    let mut cluster = Cluster::start(
        NODES,
        ClusterOptions {
            voters: Some(VOTERS),
            ..ClusterOptions::fast(SESSION_TIMEOUT_MS, LAG_MS)
        },
    );
    let voters: Vec<&str> = cluster.voters().split(',').collect();
    assert_eq!(voters.len(), VOTERS, "{}", cluster.voters());
    assert!(
        voters
            .iter()
            .all(|v| !v.starts_with(&format!("{LEARNER}@"))),
        "node {LEARNER} must not be a voter: {}",
        cluster.voters()
    );

    // The learner has the cluster's metadata: every broker, a voter as controller.
    for id in cluster.ids() {
        assert_eq!(
            cluster.brokers_listed_by(id),
            Some(vec![1, 2, 3, 4]),
            "node {id}'s Metadata\n{}",
            cluster.logs()
        );
    }
    let controller = cluster.controller_id_from(LEARNER);
    assert!(
        controller.is_some_and(|c| (1..=VOTERS as i32).contains(&c)),
        "node {LEARNER} reports controller {controller:?}, expected a voter\n{}",
        cluster.logs()
    );

    // A topic created through the voters reaches the learner's metadata, with the leaders
    // and ISRs the voters report.
    cluster.create_topic(EARLY_TOPIC, EARLY_PARTITIONS, 3, &[]);
    for partition in 0..EARLY_PARTITIONS {
        cluster.wait_for(
            &format!("node {LEARNER} to describe {EARLY_TOPIC}-{partition} as the voters do"),
            Duration::from_secs(30),
            |c| {
                let learner = c.partition_state_from(LEARNER, EARLY_TOPIC, partition)?;
                let voters = (1..=VOTERS as i32)
                    .map(|id| c.partition_state_from(id, EARLY_TOPIC, partition))
                    .collect::<Option<Vec<_>>>()?;
                voters
                    .iter()
                    .all(|s| *s == learner && s.leader.is_some())
                    .then_some(())
            },
        );
    }

    // Replication factor 4: the learner replicates every partition, in every ISR once
    // created.
    cluster.create_topic(
        TOPIC,
        PARTITIONS,
        NODES as i16,
        &[("min.insync.replicas", "2")],
    );
    for partition in 0..PARTITIONS {
        let state = cluster
            .partition_state_agreed(TOPIC, partition)
            .expect("create_topic waits for agreement");
        assert!(
            state.replicas.contains(&LEARNER) && state.in_isr(LEARNER),
            "{TOPIC}-{partition}: {state:?}"
        );
    }
    let ends = produce_batches(&mut cluster, "first");
    let high_watermarks = wait_committed(&mut cluster, &ends);
    assert_all_identical(&mut cluster, &high_watermarks, "before the kill");

    // kill -9 the learner: its session expires, the controller fences it, it leaves every
    // ISR (partitions it led get another leader), and the brokers stop listing it.
    cluster.kill9(LEARNER);
    for partition in 0..PARTITIONS {
        let fenced = cluster.wait_for_partition(
            TOPIC,
            partition,
            &format!("node {LEARNER} fenced out of the ISR, a live leader"),
            Duration::from_secs(30),
            |s| !s.in_isr(LEARNER) && s.leader.is_some_and(|l| l != LEARNER),
        );
        assert_eq!(
            fenced.isr.len(),
            NODES - 1,
            "only the learner leaves: {fenced:?}"
        );
    }
    cluster.wait_for(
        &format!("the voters to stop listing the fenced node {LEARNER}"),
        Duration::from_secs(30),
        |c| {
            (1..=VOTERS as i32)
                .all(|id| c.brokers_listed_by(id) == Some(vec![1, 2, 3]))
                .then_some(())
        },
    );

    // Writes go on without it (ISR 3, min ISR 2).
    let ends = produce_batches(&mut cluster, "while-down");
    wait_committed(&mut cluster, &ends);

    // Restarted on its data directory, it registers again, is unfenced, catches up and
    // rejoins every ISR.
    cluster.restart(LEARNER);
    for partition in 0..PARTITIONS {
        cluster.wait_for_partition(
            TOPIC,
            partition,
            &format!("node {LEARNER} back in the ISR"),
            Duration::from_secs(60),
            |s| s.isr_is_full() && s.in_isr(LEARNER),
        );
    }
    cluster.wait_for(
        "every node to list the four brokers again",
        Duration::from_secs(30),
        |c| {
            c.ids()
                .into_iter()
                .all(|id| c.brokers_listed_by(id) == Some(vec![1, 2, 3, 4]))
                .then_some(())
        },
    );
    let ends = produce_batches(&mut cluster, "after-restart");
    let high_watermarks = wait_committed(&mut cluster, &ends);
    assert_all_identical(&mut cluster, &high_watermarks, "after the restart");
}
