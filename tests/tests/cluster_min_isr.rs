//! min.insync.replicas: with replication factor 3 and min ISR 2, once both followers are
//! `kill -9`ed and the ISR has shrunk to the leader alone, acks=all is refused with
//! NOT_ENOUGH_REPLICAS (19), acks=1 is appended but stays invisible (the high watermark does
//! not move over it), and once the followers are back in the ISR those records become
//! readable.
//!
//! Five brokers, so that the controller quorum (every broker is a voter) survives the two
//! dead followers and can commit the ISR shrink. A second test sets min ISR as the cluster
//! default (a dynamic broker config) instead of on the topic.

use std::time::Duration;

use sluice_tests::workload::numbered_values;
use sluice_tests::{AckedBatch, Cluster, ClusterOptions};

const TOPIC: &str = "min-isr";
const NOT_ENOUGH_REPLICAS: i16 = 19;
const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 = 20;
const REQUEST_TIMED_OUT: i16 = 7;

/// One produce to `node`: (error code, base offset).
fn produce(cluster: &Cluster, node: i32, values: &[String], acks: i16) -> (i16, i64) {
    cluster.produce_once(node, TOPIC, 0, values, acks)
}

#[test]
fn below_min_isr_acks_all_is_refused_and_acks_1_stays_invisible_until_the_isr_recovers() {
    let mut cluster = Cluster::start(5, ClusterOptions::fast(2_000, 2_000));
    let state = cluster.create_one_partition_topic(TOPIC, 3, &[("min.insync.replicas", "2")]);
    let leader = state.leader.expect("a leader");
    let followers = state.followers();
    assert_eq!(followers.len(), 2, "{state:?}");

    let (code, first_offset) = produce(&cluster, leader, &numbered_values("before", 10), -1);
    assert_eq!(code, 0, "acks=all with the full ISR\n{}", cluster.logs());

    for &f in &followers {
        cluster.kill9(f);
    }
    cluster.wait_for(
        "every live node to report the ISR shrunk to the leader alone",
        Duration::from_secs(30),
        |c| {
            c.partition_state_agreed(TOPIC, 0)
                .filter(|s| s.leader == Some(leader) && s.isr == vec![leader])
        },
    );

    // acks=all is refused before the append. While the leader still counts the dead
    // followers (a shrink not yet applied) it may instead time out or fail after the
    // append; it must never succeed.
    let mut refused = false;
    for attempt in 0..20 {
        let (code, _) = produce(
            &cluster,
            leader,
            &numbered_values(&format!("all{attempt}"), 5),
            -1,
        );
        assert_ne!(
            code,
            0,
            "acks=all acknowledged with an ISR of 1 below min ISR 2\n{}",
            cluster.logs()
        );
        if code == NOT_ENOUGH_REPLICAS {
            refused = true;
            break;
        }
        assert!(
            [NOT_ENOUGH_REPLICAS_AFTER_APPEND, REQUEST_TIMED_OUT].contains(&code),
            "acks=all below min ISR answered error {code}, expected NOT_ENOUGH_REPLICAS (19)\n{}",
            cluster.logs()
        );
    }
    assert!(
        refused,
        "acks=all never got NOT_ENOUGH_REPLICAS\n{}",
        cluster.logs()
    );

    // acks=1 is appended and acknowledged, but not committed: invisible to consumers.
    let one = numbered_values("one", 10);
    let (code, one_offset) = produce(&cluster, leader, &one, 1);
    assert_eq!(code, 0, "acks=1 with the leader alive\n{}", cluster.logs());
    assert!(one_offset > first_offset);
    let (high_watermark, records) = cluster
        .read_from_leader(leader, TOPIC, 0)
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    assert!(
        high_watermark <= one_offset,
        "the high watermark {high_watermark} covers the acks=1 records at {one_offset}.. with an ISR below min ISR"
    );
    assert!(
        records.iter().all(|r| r.offset < high_watermark
            && !r.value.as_deref().is_some_and(|v| v.starts_with(b"one-"))),
        "a consumer read uncommitted records: {:?}",
        records.iter().map(|r| r.offset).collect::<Vec<_>>()
    );
    assert!(
        records
            .iter()
            .any(|r| r.offset == first_offset && r.value.as_deref() == Some(&b"before-0"[..])),
        "the committed record before-0 at {first_offset} is not readable"
    );

    for &f in &followers {
        cluster.restart(f);
    }
    cluster.wait_for_partition(
        TOPIC,
        0,
        "both followers back in the ISR",
        Duration::from_secs(60),
        |s| s.isr_is_full() && s.leader == Some(leader),
    );
    // The acks=1 records become readable, at the offsets their acknowledgement reported.
    let one_batch = AckedBatch {
        values: one,
        base_offset: one_offset,
    };
    let (high_watermark, _) =
        cluster.assert_batches_committed(leader, TOPIC, 0, &[one_batch], Duration::from_secs(30));
    let mut nodes = vec![leader];
    nodes.extend(&followers);
    cluster.assert_replicas_identical(TOPIC, 0, &nodes, high_watermark);
}

/// IncrementalAlterConfigs of the cluster default's `min.insync.replicas` through `node`
/// (`None` deletes it); the resource's error code.
fn alter_cluster_min_isr(cluster: &Cluster, node: i32, value: Option<&str>) -> i16 {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    use kafka_protocol::messages::{
        ApiKey, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    };
    use kafka_protocol::protocol::StrBytes;
    let change = AlterableConfig::default()
        .with_name(StrBytes::from_static_str("min.insync.replicas"))
        .with_config_operation(if value.is_some() { 0 } else { 1 })
        .with_value(value.map(|v| StrBytes::from_string(v.to_string())));
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_static_str(""))
            .with_configs(vec![change]),
    ]);
    let mut conn = sluice_tests::raw::RawConnection::connect(&cluster.address(node)).unwrap();
    let response: IncrementalAlterConfigsResponse = conn
        .request(ApiKey::IncrementalAlterConfigs, 1, &request)
        .unwrap();
    response.responses[0].error_code
}

/// The cluster default `min.insync.replicas` (a dynamic broker config) reaches a topic
/// without its own, live on its leader: three replicas, one dead and out of the ISR;
/// acks=all is acknowledged at Kafka's default of 1, refused once the cluster default is
/// 3, and acknowledged again once it is removed.
#[test]
fn a_cluster_default_min_isr_applies_live_to_topics_without_their_own() {
    let mut cluster = Cluster::start(3, ClusterOptions::fast(2_000, 2_000));
    let state = cluster.create_one_partition_topic(TOPIC, 3, &[]);
    let leader = state.leader.expect("a leader");
    let dead = state.followers()[0];
    cluster.kill9(dead);
    cluster.wait_for(
        "the dead follower to leave the ISR",
        Duration::from_secs(30),
        |c| {
            c.partition_state_agreed(TOPIC, 0)
                .filter(|s| s.leader == Some(leader) && s.isr.len() == 2)
        },
    );
    let (code, _) = produce(&cluster, leader, &numbered_values("default", 5), -1);
    assert_eq!(code, 0, "acks=all with 2 of min ISR 1\n{}", cluster.logs());

    assert_eq!(alter_cluster_min_isr(&cluster, leader, Some("3")), 0);
    cluster.wait_for(
        "acks=all refused with NOT_ENOUGH_REPLICAS under a cluster default of 3",
        Duration::from_secs(30),
        |c| {
            let (code, _) = produce(c, leader, &numbered_values("three", 5), -1);
            (code == NOT_ENOUGH_REPLICAS).then_some(())
        },
    );
    assert_eq!(alter_cluster_min_isr(&cluster, leader, None), 0);
    cluster.wait_for(
        "acks=all acknowledged again once the cluster default is gone",
        Duration::from_secs(30),
        |c| {
            let (code, _) = produce(c, leader, &numbered_values("again", 5), -1);
            (code == 0).then_some(())
        },
    );
}
