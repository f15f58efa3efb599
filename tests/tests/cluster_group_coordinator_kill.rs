//! `kill -9` of a group's coordinator under a commit load: three brokers, `__consumer_offsets`
//! with three replicas. A client commits increasing offsets one after another, retrying
//! each until acknowledged and finding the coordinator again when told to (as clients do).
//! After the kill the commits continue on the new coordinator within the controller's
//! session timeout plus a few seconds; no acknowledged commit is lost or goes backwards (a
//! fetch after every tenth commit, and at the end); once the killed broker is back it
//! serves the same offsets when it coordinates again.

use std::time::{Duration, Instant};

use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use sluice_tests::raw::topic_name;
use sluice_tests::{Cluster, ClusterOptions};

const GROUP: &str = "failover-group";
const TOPIC: &str = "failover-topic";
const COMMITS: i64 = 400;
const KILL_AT: i64 = 150;

fn group_id() -> GroupId {
    GroupId(StrBytes::from_string(GROUP.to_string()))
}

/// The group's coordinator as some live node answers it.
fn find_coordinator(cluster: &mut Cluster) -> Option<i32> {
    for id in cluster.live_ids() {
        let Ok(mut conn) = cluster.connect(id) else {
            continue;
        };
        let request =
            FindCoordinatorRequest::default().with_key(StrBytes::from_string(GROUP.to_string()));
        let Ok(response) =
            conn.request::<_, FindCoordinatorResponse>(ApiKey::FindCoordinator, 3, &request)
        else {
            continue;
        };
        if response.error_code == 0 && cluster.ids().contains(&response.node_id.0) {
            return Some(response.node_id.0);
        }
    }
    None
}

/// Commit `offset` to `coordinator`: `Ok` once acknowledged, `Err` to retry elsewhere.
fn commit(cluster: &Cluster, coordinator: i32, offset: i64) -> Result<(), String> {
    let mut conn = cluster.connect(coordinator).map_err(|e| e.to_string())?;
    conn.set_read_timeout(Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    let request = OffsetCommitRequest::default()
        .with_group_id(group_id())
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name(TOPIC))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)])]);
    let response: OffsetCommitResponse = conn
        .request(ApiKey::OffsetCommit, 8, &request)
        .map_err(|e| e.to_string())?;
    match response.topics[0].partitions[0].error_code {
        0 => Ok(()),
        code => Err(format!("error code {code}")),
    }
}

/// The committed offset as `coordinator` answers it.
fn fetch(cluster: &Cluster, coordinator: i32) -> Result<i64, String> {
    let mut conn = cluster.connect(coordinator).map_err(|e| e.to_string())?;
    let request = OffsetFetchRequest::default()
        .with_group_id(group_id())
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(topic_name(TOPIC))
            .with_partition_indexes(vec![0])]));
    let response: OffsetFetchResponse = conn
        .request(ApiKey::OffsetFetch, 7, &request)
        .map_err(|e| e.to_string())?;
    match response.error_code {
        0 => Ok(response.topics[0].partitions[0].committed_offset),
        code => Err(format!("error code {code}")),
    }
}

/// Commit `offset`, finding the coordinator again after each failure, until acknowledged.
fn commit_until_acknowledged(cluster: &mut Cluster, coordinator: &mut i32, offset: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match commit(cluster, *coordinator, offset) {
            Ok(()) => return,
            Err(why) => {
                assert!(
                    Instant::now() < deadline,
                    "commit of {offset} not acknowledged in 60 s: {why}\n{}",
                    cluster.logs()
                );
                std::thread::sleep(Duration::from_millis(50));
                if let Some(found) = find_coordinator(cluster) {
                    *coordinator = found;
                }
            }
        }
    }
}

/// The committed offset, from whichever node coordinates, with a deadline.
fn fetch_from_coordinator(cluster: &mut Cluster, coordinator: &mut i32) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match fetch(cluster, *coordinator) {
            Ok(offset) => return offset,
            Err(why) => {
                assert!(
                    Instant::now() < deadline,
                    "no committed offset in 60 s: {why}"
                );
                std::thread::sleep(Duration::from_millis(50));
                if let Some(found) = find_coordinator(cluster) {
                    *coordinator = found;
                }
            }
        }
    }
}

#[test]
fn acknowledged_commits_survive_a_coordinator_kill_9() {
    let mut cluster = Cluster::start(3, ClusterOptions::fast(2_000, 2_000));
    cluster.create_one_partition_topic(TOPIC, 3, &[]);
    let mut coordinator = cluster.wait_for(
        "a coordinator for the group",
        Duration::from_secs(60),
        find_coordinator,
    );
    let offsets_partition = cluster.wait_for("the offsets topic", Duration::from_secs(30), |c| {
        let state = c.partition_state_agreed("__consumer_offsets", 0)?;
        Some(state)
    });
    assert_eq!(offsets_partition.replicas.len(), 3, "{offsets_partition:?}");

    let mut killed = None;
    let mut recovered_after = None;
    for offset in 1..=COMMITS {
        let started = Instant::now();
        commit_until_acknowledged(&mut cluster, &mut coordinator, offset);
        if killed.is_some() && recovered_after.is_none() {
            recovered_after = Some(started.elapsed());
        }
        if offset % 10 == 0 {
            let committed = fetch_from_coordinator(&mut cluster, &mut coordinator);
            assert_eq!(
                committed, offset,
                "the last acknowledged commit is what is committed"
            );
        }
        if offset == KILL_AT {
            cluster.kill9(coordinator);
            killed = Some(coordinator);
        }
    }
    let killed = killed.expect("killed");
    let recovered_after = recovered_after.expect("a commit after the kill");
    assert!(
        recovered_after < Duration::from_secs(20),
        "the first commit after the kill took {recovered_after:?}"
    );
    assert_ne!(coordinator, killed, "a live broker coordinates now");
    assert_eq!(
        fetch_from_coordinator(&mut cluster, &mut coordinator),
        COMMITS
    );

    // The killed broker comes back; whoever coordinates serves the same offset.
    cluster.restart(killed);
    cluster.wait_for(
        "the restarted broker in the offsets partition's ISR",
        Duration::from_secs(60),
        |c| {
            let partition = offsets_partition_of_group(c)?;
            let state = c.partition_state_agreed("__consumer_offsets", partition)?;
            state.isr_is_full().then_some(())
        },
    );
    assert_eq!(
        fetch_from_coordinator(&mut cluster, &mut coordinator),
        COMMITS
    );
    commit_until_acknowledged(&mut cluster, &mut coordinator, COMMITS + 1);
    assert_eq!(
        fetch_from_coordinator(&mut cluster, &mut coordinator),
        COMMITS + 1
    );
}

/// The group's partition of `__consumer_offsets` (Kafka's placement: Java's hashCode).
fn offsets_partition_of_group(cluster: &mut Cluster) -> Option<i32> {
    let node = *cluster.live_ids().first()?;
    let partitions = cluster
        .metadata_from(node, Some(&["__consumer_offsets"]))
        .ok()?
        .topics
        .first()?
        .partitions
        .len() as i32;
    let hash = GROUP.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    });
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    Some(abs % partitions)
}
