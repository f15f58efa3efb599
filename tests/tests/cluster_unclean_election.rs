//! Unclean leader election (`unclean.leader.election.enable=true`): when every in-sync
//! replica is dead, a returning replica from outside the ISR is made leader, the election is
//! logged and counted (`sluice_unclean_leader_elections_total`), and the new leader serves.
//! Without the setting the same partition stays offline (see the controller's metadata
//! tests for the rule itself; this test covers the running cluster).
//!
//! Seven brokers, all controller voters, so the quorum (four) survives the three dead
//! replicas.

use std::time::Duration;

use sluice_tests::raw::{http_get, metric_sum};
use sluice_tests::workload::numbered_values;
use sluice_tests::{Cluster, ClusterOptions};

const TOPIC: &str = "unclean";
const UNCLEAN_ELECTIONS: &str = "sluice_unclean_leader_elections_total";

/// One produce of five records `<prefix>-<i>` to `node`: (error code, base offset).
fn produce(cluster: &Cluster, node: i32, prefix: &str, acks: i16) -> (i16, i64) {
    cluster.produce_once(node, TOPIC, 0, &numbered_values(prefix, 5), acks)
}

fn unclean_elections_seen_by(cluster: &Cluster, node: i32) -> f64 {
    http_get(&cluster.broker(node).metrics_address(), "/metrics")
        .map(|text| metric_sum(&text, UNCLEAN_ELECTIONS))
        .unwrap_or(0.0)
}

#[test]
fn a_replica_outside_the_isr_is_elected_when_the_topic_allows_it() {
    let mut cluster = Cluster::start(7, ClusterOptions::fast(2_000, 2_000));
    let state = cluster.create_one_partition_topic(
        TOPIC,
        3,
        &[
            ("unclean.leader.election.enable", "true"),
            ("min.insync.replicas", "1"),
        ],
    );
    let leader = state.leader.expect("a leader");
    let (stale, last) = match state.followers()[..] {
        [a, b] => (a, b),
        _ => panic!("two followers expected: {state:?}"),
    };
    let bystander = cluster
        .ids()
        .into_iter()
        .find(|id| !state.replicas.contains(id))
        .expect("a broker that is no replica");
    assert_eq!(produce(&cluster, leader, "first", -1).0, 0);

    // `stale` dies first and leaves the ISR; writes go on without it.
    cluster.kill9(stale);
    cluster.wait_for_partition(
        TOPIC,
        0,
        "the dead follower out of the ISR",
        Duration::from_secs(30),
        |s| !s.in_isr(stale) && s.leader == Some(leader),
    );
    assert_eq!(produce(&cluster, leader, "without-stale", 1).0, 0);
    // Then the rest of the ISR dies: no in-sync replica is left.
    cluster.kill9(last);
    cluster.wait_for_partition(
        TOPIC,
        0,
        "the ISR down to the leader",
        Duration::from_secs(30),
        |s| s.isr == vec![leader],
    );
    cluster.kill9(leader);
    cluster.wait_for_partition(
        TOPIC,
        0,
        "the partition offline",
        Duration::from_secs(30),
        |s| s.leader.is_none(),
    );
    let before = unclean_elections_seen_by(&cluster, bystander);

    // The stale replica returns: it is not in the ISR, but the topic allows electing it.
    cluster.restart(stale);
    let elected = cluster.wait_for_partition(
        TOPIC,
        0,
        "the returning out-of-ISR replica elected uncleanly",
        Duration::from_secs(30),
        |s| s.leader == Some(stale) && s.isr == vec![stale],
    );
    assert!(elected.leader_epoch > state.leader_epoch, "{elected:?}");
    let counted = cluster.wait_for(
        "the unclean election counted in /metrics",
        Duration::from_secs(10),
        |c| Some(unclean_elections_seen_by(c, bystander)).filter(|n| *n > before),
    );
    assert!(counted >= 1.0);
    let logged = (1..=7)
        .filter(|id| *id != leader && *id != last)
        .any(|id| cluster.broker(id).log().contains("unclean leader election"));
    assert!(
        logged,
        "no node logged the unclean election\n{}",
        cluster.logs()
    );

    // The new leader serves writes.
    let (code, _) = produce(&cluster, stale, "after-unclean", 1);
    assert_eq!(
        code,
        0,
        "the uncleanly elected leader takes writes\n{}",
        cluster.logs()
    );
}
