//! The controller fails over, and the new one does the controller's work: after `kill -9`
//! of the active controller another broker is reported as controller, partitions the dead
//! broker led get new leaders, and when a partition leader is then `kill -9`ed too, its
//! partitions get a new leader with a higher leader epoch, which serves writes.
//!
//! Five brokers (all controller voters), so that the quorum survives both kills.

use std::collections::BTreeMap;
use std::time::Duration;

use sluice_tests::raw::try_produce_values;
use sluice_tests::{Cluster, ClusterOptions, PartitionState};

const TOPIC: &str = "controller-kill";
const PARTITIONS: i32 = 5;

fn states(cluster: &mut Cluster) -> Option<BTreeMap<i32, PartitionState>> {
    (0..PARTITIONS)
        .map(|p| Some((p, cluster.partition_state(TOPIC, p)?)))
        .collect()
}

#[test]
fn partitions_fail_over_after_the_controller_and_a_leader_are_killed() {
    let mut cluster = Cluster::start(5, ClusterOptions::fast(2_000, 2_000));
    cluster.create_topic(TOPIC, PARTITIONS, 3, &[("min.insync.replicas", "2")]);

    let first_controller = cluster.wait_for("a controller", Duration::from_secs(30), |c| {
        c.controller_id()
    });
    cluster.kill9(first_controller);
    let second_controller = cluster.wait_for(
        "every live node to report the same new controller",
        Duration::from_secs(30),
        |c| {
            let mut reported = None;
            for id in c.live_ids() {
                let controller = c.controller_id_from(id)?;
                if controller == first_controller || reported.is_some_and(|r| r != controller) {
                    return None;
                }
                reported = Some(controller);
            }
            reported
        },
    );
    eprintln!("controller {first_controller} killed; {second_controller} took over");

    // The new controller fences the dead one: nothing stays led by it.
    let before = cluster.wait_for(
        "every partition led by a live broker",
        Duration::from_secs(30),
        |c| {
            let states = states(c)?;
            states
                .values()
                .all(|s| s.leader.is_some_and(|l| l != first_controller))
                .then_some(states)
        },
    );

    // A leader other than the dead controller, preferably not the new controller either,
    // so that the new controller handles its failure.
    let leaders: Vec<i32> = before.values().filter_map(|s| s.leader).collect();
    let victim = leaders
        .iter()
        .copied()
        .find(|&l| l != second_controller)
        .unwrap_or(leaders[0]);
    let led: BTreeMap<i32, PartitionState> = before
        .into_iter()
        .filter(|(_, s)| s.leader == Some(victim))
        .collect();
    cluster.kill9(victim);
    eprintln!(
        "killed leader {victim} of partitions {:?}",
        led.keys().collect::<Vec<_>>()
    );

    for (&partition, old) in &led {
        let new = cluster.wait_for_partition(
            TOPIC,
            partition,
            &format!(
                "a new leader after {victim}, with a leader epoch above {}",
                old.leader_epoch
            ),
            Duration::from_secs(30),
            |s| {
                s.leader
                    .is_some_and(|l| l != victim && l != first_controller)
                    && s.leader_epoch > old.leader_epoch
            },
        );
        let leader = new.leader.expect("checked above");
        assert!(
            new.replicas.contains(&leader),
            "partition {partition}: leader {leader} is not a replica: {new:?}"
        );
        // The new leader serves the partition (acks=1: the ISR may be below min ISR when
        // both dead brokers were replicas of it).
        let mut last = String::new();
        let served = cluster.poll_until(std::time::Instant::now() + Duration::from_secs(20), |c| {
            let mut conn = c.connect(leader).ok()?;
            match try_produce_values(&mut conn, TOPIC, partition, &["after-failover"], 1, 5_000) {
                Ok((0, offset)) => Some(offset),
                other => {
                    last = format!("{other:?}");
                    None
                }
            }
        });
        assert!(
            served.is_some(),
            "partition {partition}: new leader {leader} does not accept writes (last answer {last})\n{}",
            cluster.logs()
        );
        eprintln!("partition {partition}: {old:?} -> {new:?}");
    }
}
