//! The admin nemesis: what an operator does while faults happen. It reassigns a partition
//! (AlterPartitionReassignments: a new replica order, or with more nodes than replicas a new
//! replica set, whose new members copy the log while the run goes on) and asks for a
//! preferred leader election (ElectLeaders), so leadership moves under load and faults.
//! Requests go to a random live node (any node forwards them to the active controller,
//! KIP-590); a refusal or a dead node is part of the fault, recorded in its detail.

use std::time::Duration;

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiKey, BrokerId,
    ElectLeadersRequest, ElectLeadersResponse,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

use super::target::ChaosTarget;
use crate::raw::topic_name;

/// Reassign `topic`'s `partition` to a new replica order (3 replicas; a new set when the
/// cluster has more nodes), then elect its preferred leader. Returns what was done, for
/// the fault's detail.
pub(super) fn reassign_and_elect(
    cluster: &mut impl ChaosTarget,
    topic: &str,
    partition: i32,
    rng: &mut StdRng,
) -> String {
    let Some(current) = cluster.partition_state(topic, partition) else {
        return format!("partition {partition}: no metadata");
    };
    let mut target = cluster.ids();
    target.shuffle(rng);
    target.truncate(current.replicas.len());
    if target == current.replicas {
        target.rotate_left(1);
    }
    let live = cluster.live_ids();
    let via = live[rng.random_range(0..live.len())];
    let reassigned = reassign(cluster, via, topic, partition, &target);
    let elected = elect_preferred(cluster, via, topic, partition);
    format!("partition {partition} {:?} -> {target:?} via node {via}: reassign {reassigned}, elect {elected}", current.replicas)
}

fn reassign(
    cluster: &impl ChaosTarget,
    via: i32,
    topic: &str,
    partition: i32,
    target: &[i32],
) -> String {
    let request = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![ReassignableTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ReassignablePartition::default()
                .with_partition_index(partition)
                .with_replicas(Some(
                    target.iter().copied().map(BrokerId).collect(),
                ))])]);
    let answer = cluster.connect(via).and_then(|mut conn| {
        conn.set_read_timeout(Duration::from_secs(15))?;
        conn.request::<_, AlterPartitionReassignmentsResponse>(
            ApiKey::AlterPartitionReassignments,
            0,
            &request,
        )
    });
    match answer {
        Ok(response) => {
            let code = response
                .responses
                .first()
                .and_then(|t| t.partitions.first())
                .map_or(response.error_code, |p| p.error_code);
            format!("error {}", code.max(response.error_code))
        }
        Err(e) => format!("failed ({e})"),
    }
}

fn elect_preferred(cluster: &impl ChaosTarget, via: i32, topic: &str, partition: i32) -> String {
    let request = ElectLeadersRequest::default()
        .with_election_type(0)
        .with_timeout_ms(10_000)
        .with_topic_partitions(Some(vec![TopicPartitions::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![partition])]));
    let answer = cluster.connect(via).and_then(|mut conn| {
        conn.set_read_timeout(Duration::from_secs(15))?;
        conn.request::<_, ElectLeadersResponse>(ApiKey::ElectLeaders, 1, &request)
    });
    match answer {
        Ok(response) => {
            let code = response
                .replica_election_results
                .first()
                .and_then(|t| t.partition_result.first())
                .map_or(response.error_code, |p| p.error_code);
            format!("error {code}")
        }
        Err(e) => format!("failed ({e})"),
    }
}
