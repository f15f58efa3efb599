//! DescribeQuorum (KIP-595/KIP-836): the controller quorum as Kafka reports its metadata
//! log, partition 0 of `__cluster_metadata`: leader, epoch (the Raft term), high watermark,
//! and each voter's and observer's log end offset.
//!
//! Only the quorum leader knows every member's progress (openraft keeps it on the leader), so
//! only the leader answers; any other node answers the partition with NOT_LEADER_OR_FOLLOWER
//! and the leader it knows of in `leader_id` (-1 if none), and the client asks that broker.
//! Kafka's brokers forward the request to the active controller instead; answering with the
//! leader's id needs no broker-to-controller round trip and is as good for a client, which
//! can reach every controller here since controllers are brokers.
//!
//! Raft log indexes start at 0 and Kafka offsets name the next entry, so a member holding
//! entries up to index `i` has log end offset `i + 1`. The high watermark is the leader's
//! applied index + 1: the quorum status this reads (openraft's metrics) carries the applied
//! index, not the committed one. The applied index never passes the committed one, so the
//! high watermark may trail the commit index + 1 (the commit index is the log store's
//! `sluice_controller_raft_commit_index` gauge) by the entries being applied; it never
//! names an entry the quorum does not hold.
//!
//! `last_fetch_timestamp` and `last_caught_up_timestamp` are -1 (unknown) for every member
//! but the leader. openraft 0.9's `RaftMetrics` keeps, per follower, only the last log id it
//! matched (`replication`), and one quorum-wide `millis_since_quorum_ack`: no time of a
//! follower's last heartbeat, append or catch-up. Holding the leader's last entry says
//! nothing about when, so it is not reported as "caught up now": on an idle metadata log a
//! dead voter would hold the last entry until it is fenced. The leader reports now for
//! itself in both fields, as Kafka's leader does (it is caught up with its own log). A
//! request for any other topic or partition gets the top-level error
//! UNKNOWN_TOPIC_OR_PARTITION, as Kafka answers it.

use kafka_protocol::messages::describe_quorum_response::{PartitionData, ReplicaState, TopicData};
use kafka_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse};
use sluice_protocol::api::METADATA_TOPIC;
use sluice_protocol::error::ErrorCode;

use super::{count_error, topic_name};
use crate::controller::{NodeId, QuorumStatus};
use crate::server::Broker;
use sluice_protocol::clock::now_ms;

pub fn handle(
    broker: &Broker,
    request: DescribeQuorumRequest,
    version: i16,
) -> DescribeQuorumResponse {
    let status = broker.controller.controller().quorum_status();
    describe(&status, &request, version, now_ms())
}

/// The answer to `request` from a node whose view of the quorum is `status`, at `now_ms`.
pub fn describe(
    status: &QuorumStatus,
    request: &DescribeQuorumRequest,
    version: i16,
    now_ms: i64,
) -> DescribeQuorumResponse {
    let mut response = DescribeQuorumResponse::default();
    if !asks_for_metadata_partition(request) {
        response.error_code = count_error("DescribeQuorum", ErrorCode::UnknownTopicOrPartition);
        return response;
    }
    let mut partition = PartitionData::default();
    partition.partition_index = 0;
    partition.leader_id = BrokerId(status.leader.map_or(-1, node_to_broker));
    partition.leader_epoch = i32::try_from(status.term).unwrap_or(i32::MAX);
    match &status.matched {
        Some(matched) if status.leader == Some(status.node_id) => {
            partition.high_watermark = status.applied_index.map_or(-1, end_offset);
            let last_index = status.last_log_index;
            let state = |id: &NodeId| {
                // The leader's own progress entry can trail its log by a flush.
                let held = if *id == status.node_id {
                    last_index
                } else {
                    matched.get(id).copied().flatten()
                };
                let mut replica = ReplicaState::default();
                replica.replica_id = BrokerId(node_to_broker(*id));
                replica.log_end_offset = held.map_or(-1, end_offset);
                // Both fields stay -1 (unknown) for followers: see the module doc.
                if version >= 1 && *id == status.node_id {
                    replica.last_fetch_timestamp = now_ms;
                    replica.last_caught_up_timestamp = now_ms;
                }
                replica
            };
            partition.current_voters = status.voters.iter().map(state).collect();
            partition.observers = status.learners.iter().map(state).collect();
        }
        _ => {
            partition.error_code = count_error("DescribeQuorum", ErrorCode::NotLeaderOrFollower);
        }
    }
    let mut topic = TopicData::default();
    topic.topic_name = topic_name(METADATA_TOPIC);
    topic.partitions = vec![partition];
    response.topics = vec![topic];
    response
}

/// Whether the request names exactly the metadata log's partition (Kafka's check).
fn asks_for_metadata_partition(request: &DescribeQuorumRequest) -> bool {
    match request.topics.as_slice() {
        [topic] => {
            &*topic.topic_name.0 == METADATA_TOPIC
                && matches!(topic.partitions.as_slice(), [p] if p.partition_index == 0)
        }
        _ => false,
    }
}

/// The offset after Raft log index `index`.
fn end_offset(index: u64) -> i64 {
    i64::try_from(index).map_or(i64::MAX, |i| i.saturating_add(1))
}

/// Controller node ids are broker ids.
fn node_to_broker(id: NodeId) -> i32 {
    i32::try_from(id).unwrap_or(-1)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::BytesMut;
    use kafka_protocol::messages::describe_quorum_request;
    use kafka_protocol::protocol::{Decodable, Encodable};

    use super::*;

    fn request(topic: &str, partitions: &[i32]) -> DescribeQuorumRequest {
        DescribeQuorumRequest::default().with_topics(vec![
            describe_quorum_request::TopicData::default()
                .with_topic_name(topic_name(topic))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|p| {
                            describe_quorum_request::PartitionData::default()
                                .with_partition_index(*p)
                        })
                        .collect(),
                ),
        ])
    }

    fn leader_status() -> QuorumStatus {
        QuorumStatus {
            node_id: 1,
            leader: Some(1),
            term: 4,
            last_log_index: Some(41),
            applied_index: Some(40),
            voters: vec![1, 2, 3],
            learners: vec![4],
            matched: Some(BTreeMap::from([
                (1, Some(39)),
                (2, Some(41)),
                (3, Some(30)),
                (4, None),
            ])),
        }
    }

    /// Encode at `version` and decode as a client would.
    fn on_the_wire(response: &DescribeQuorumResponse, version: i16) -> DescribeQuorumResponse {
        let mut buf = BytesMut::new();
        response
            .encode(&mut buf, version)
            .unwrap_or_else(|e| panic!("v{version}: {e}"));
        DescribeQuorumResponse::decode(&mut buf.freeze(), version)
            .unwrap_or_else(|e| panic!("v{version}: {e}"))
    }

    #[test]
    fn the_leader_reports_every_member_as_kafka_offsets() {
        let status = leader_status();
        for version in 0..=1 {
            let response = on_the_wire(
                &describe(&status, &request(METADATA_TOPIC, &[0]), version, 1_000),
                version,
            );
            assert_eq!(response.error_code, 0);
            let partition = &response.topics[0].partitions[0];
            assert_eq!(partition.error_code, 0);
            assert_eq!(partition.leader_id, BrokerId(1));
            assert_eq!(partition.leader_epoch, 4);
            assert_eq!(partition.high_watermark, 41, "applied index 40 + 1");
            let voters: Vec<(i32, i64)> = partition
                .current_voters
                .iter()
                .map(|r| (r.replica_id.0, r.log_end_offset))
                .collect();
            // The leader counts from its log; follower 2 holds the last entry; 3 lags.
            assert_eq!(voters, vec![(1, 42), (2, 42), (3, 31)], "v{version}");
            let observers: Vec<(i32, i64)> = partition
                .observers
                .iter()
                .map(|r| (r.replica_id.0, r.log_end_offset))
                .collect();
            assert_eq!(observers, vec![(4, -1)], "nothing matched yet: unknown");
        }
    }

    #[test]
    fn only_the_leader_reports_fetch_and_caught_up_times() {
        // Follower 2 holds the leader's last entry, but openraft keeps no time of when it
        // got there (it may have died since): unknown, not "now". The leader is caught up
        // with itself now, as Kafka's leader reports it.
        let status = leader_status();
        let times = |version| {
            let response = on_the_wire(
                &describe(&status, &request(METADATA_TOPIC, &[0]), version, 1_000),
                version,
            );
            let partition = &response.topics[0].partitions[0];
            partition
                .current_voters
                .iter()
                .chain(&partition.observers)
                .map(|r| {
                    (
                        r.replica_id.0,
                        r.last_fetch_timestamp,
                        r.last_caught_up_timestamp,
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            times(1),
            vec![(1, 1_000, 1_000), (2, -1, -1), (3, -1, -1), (4, -1, -1)]
        );
        // v0 has neither field.
        assert_eq!(
            times(0),
            vec![(1, -1, -1), (2, -1, -1), (3, -1, -1), (4, -1, -1)]
        );
    }

    #[test]
    fn a_follower_names_the_leader_and_answers_not_leader() {
        let status = QuorumStatus {
            node_id: 2,
            matched: None,
            ..leader_status()
        };
        let response = on_the_wire(&describe(&status, &request(METADATA_TOPIC, &[0]), 1, 0), 1);
        let partition = &response.topics[0].partitions[0];
        assert_eq!(partition.error_code, ErrorCode::NotLeaderOrFollower.code());
        assert_eq!(partition.leader_id, BrokerId(1));
        assert_eq!(partition.leader_epoch, 4);
        assert!(partition.current_voters.is_empty());

        let leaderless = QuorumStatus {
            leader: None,
            ..status
        };
        let response = describe(&leaderless, &request(METADATA_TOPIC, &[0]), 1, 0);
        assert_eq!(response.topics[0].partitions[0].leader_id, BrokerId(-1));
    }

    #[tokio::test]
    async fn a_single_node_broker_is_its_own_quorum_leader() {
        let dir = tempfile::tempdir().unwrap();
        let broker = crate::server::testing::broker(dir.path()).await;
        let response = handle(&broker, request(METADATA_TOPIC, &[0]), 1);
        let partition = &response.topics[0].partitions[0];
        assert_eq!(partition.error_code, 0, "{response:?}");
        assert_eq!(partition.leader_id, BrokerId(1));
        assert!(partition.leader_epoch >= 1);
        // Registered: at least the membership entry and the registration are in the log.
        assert!(partition.high_watermark >= 2, "{partition:?}");
        let voters: Vec<i32> = partition
            .current_voters
            .iter()
            .map(|v| v.replica_id.0)
            .collect();
        assert_eq!(voters, vec![1]);
        assert!(partition.current_voters[0].log_end_offset >= partition.high_watermark);
        assert!(partition.observers.is_empty());
        broker.stop().await;
    }

    #[test]
    fn any_other_partition_is_unknown() {
        let status = leader_status();
        for bad in [
            request("orders", &[0]),
            request(METADATA_TOPIC, &[1]),
            request(METADATA_TOPIC, &[0, 0]),
            DescribeQuorumRequest::default(),
        ] {
            let response = describe(&status, &bad, 1, 0);
            assert_eq!(
                response.error_code,
                ErrorCode::UnknownTopicOrPartition.code()
            );
            assert!(response.topics.is_empty());
        }
    }
}
