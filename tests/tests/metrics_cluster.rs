//! Cluster-health and controller gauges on a 3-broker cluster: every node reports the
//! metadata quorum (term, commit and applied index, leader) and the cluster's health from
//! its own copy of the metadata; a broker killed with `kill -9` shows up as fenced (and its
//! single-replica partition as offline) within the session timeout, and the leaderships it
//! lost are counted as elections.

use std::time::{Duration, Instant};

use sluice_tests::cluster::{Cluster, ClusterOptions};
use sluice_tests::raw::metric_value;

const SESSION_TIMEOUT_MS: u64 = 2_000;
/// The gauges refresh every second; leave room for a loaded machine.
const GAUGE_SLACK: Duration = Duration::from_secs(10);
/// Three partitions on three brokers, one per broker as leader.
const REPLICATED: &str = "health-replicated";
const SOLO: &str = "health-solo";

fn value(text: &str, series: &str) -> f64 {
    metric_value(text, series).unwrap_or(f64::NAN)
}

#[test]
fn health_and_raft_gauges_follow_a_killed_broker() {
    let mut cluster = Cluster::start(3, ClusterOptions::fast(SESSION_TIMEOUT_MS, 2_000));
    cluster.create_topic(REPLICATED, 3, 3, &[]);
    cluster.create_topic(SOLO, 3, 1, &[]);
    let controller = cluster.controller_id().expect("a controller");
    let ids = cluster.ids();

    // Healthy: the active controller reports the brokers, topics and partitions (the other
    // nodes report 0, as Kafka's inactive controllers do), and every node names the quorum
    // leader Metadata names as controller.
    let texts = cluster.wait_for_metrics(
        &ids,
        "healthy cluster gauges on every node",
        GAUGE_SLACK,
        |id, text| {
            let counted = |n: f64| if id == controller { n } else { 0.0 };
            value(text, "sluice_registered_brokers") == counted(3.0)
                && value(text, "sluice_fenced_brokers") == 0.0
                && value(text, "sluice_offline_partitions") == 0.0
                && value(text, "sluice_global_topic_count") == counted(2.0)
                && value(text, "sluice_global_partition_count") == counted(6.0)
                // Three replicated partitions and one single-replica one on each node.
                && value(text, "sluice_partitions") == 4.0
                && value(text, "sluice_controller_raft_leader") == f64::from(controller)
                && value(text, "sluice_active_controller") == f64::from(u8::from(id == controller))
        },
    );
    for (id, text) in ids.iter().zip(&texts) {
        let term = value(text, "sluice_controller_raft_term");
        let commit = value(text, "sluice_controller_raft_commit_index");
        let applied = value(text, "sluice_controller_raft_applied_index");
        assert!(term >= 1.0, "node {id}: term {term}\n{text}");
        // Registrations and two topics are in the metadata log.
        assert!(applied >= 5.0, "node {id}: applied {applied}\n{text}");
        assert!(
            commit >= applied,
            "node {id}: commit index {commit} behind applied {applied}\n{text}"
        );
    }

    // Kill a broker that is not the controller: the quorum keeps its leader.
    let victim = *ids.iter().find(|&&id| id != controller).unwrap();
    let survivors: Vec<i32> = ids.iter().copied().filter(|&id| id != victim).collect();
    let led_by_victim = (0..3)
        .filter(|&p| {
            cluster
                .partition_state(REPLICATED, p)
                .and_then(|s| s.leader)
                == Some(victim)
        })
        .count();
    let solo_led_by_victim = (0..3)
        .filter(|&p| cluster.partition_state(SOLO, p).and_then(|s| s.leader) == Some(victim))
        .count();
    assert!(
        led_by_victim >= 1 && solo_led_by_victim >= 1,
        "leaders spread round-robin: node {victim} leads {led_by_victim} and {solo_led_by_victim}"
    );
    let elections_before: Vec<f64> = survivors
        .iter()
        .map(|&id| {
            metric_value(&cluster.scrape(id), "sluice_leader_elections_total").unwrap_or(0.0)
        })
        .collect();
    cluster.kill9(victim);
    let killed = Instant::now();
    let texts = cluster.wait_for_metrics(
        &survivors,
        &format!("node {victim} fenced and its single-replica partition offline"),
        Duration::from_millis(SESSION_TIMEOUT_MS) + GAUGE_SLACK,
        |id, text| {
            let counted = |n: f64| if id == controller { n } else { 0.0 };
            let before = elections_before[survivors.iter().position(|&s| s == id).unwrap()];
            value(text, "sluice_fenced_brokers") == counted(1.0)
                && value(text, "sluice_offline_partitions") == counted(solo_led_by_victim as f64)
                // Every node applies the fencing (and so counts its elections) on its own.
                && value(text, "sluice_leader_elections_total") >= before + led_by_victim as f64
        },
    );
    eprintln!("fenced seen {:?} after the kill", killed.elapsed());
    for ((id, text), before) in survivors.iter().zip(&texts).zip(&elections_before) {
        assert_eq!(
            value(text, "sluice_registered_brokers"),
            if *id == controller { 3.0 } else { 0.0 },
            "node {id}: a fenced broker stays registered\n{text}"
        );
        assert_eq!(
            value(text, "sluice_controller_raft_leader"),
            f64::from(controller),
            "node {id}\n{text}"
        );
        let elections = value(text, "sluice_leader_elections_total");
        assert!(
            elections >= before + led_by_victim as f64,
            "node {id}: {led_by_victim} leaderships moved off node {victim}, elections {before} -> {elections}\n{text}"
        );
    }
}
