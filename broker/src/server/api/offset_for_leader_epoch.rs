//! OffsetForLeaderEpoch (v2-v4, Kafka 4.1's range): decode, answer each partition through
//! the replica manager ([`ReplicaManager::offset_for_leader_epoch`]
//! (crate::replica::ReplicaManager::offset_for_leader_epoch)), encode. Java and librdkafka
//! consumers send it after a leader change to check that their position was not truncated
//! away (KIP-320). The replica id (v3+) says who asks: -2 reads any replica, everyone else
//! the leader.

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::count_error;
use crate::replica::{EpochQuery, OffsetOrigin};
use crate::server::Broker;

pub fn handle(
    broker: &Broker,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let origin = OffsetOrigin::from_replica_id(request.replica_id.0);
    let mut response = OffsetForLeaderEpochResponse::default();
    for topic in request.topics {
        let mut result = OffsetForLeaderTopicResult::default();
        for partition in topic.partitions {
            let answer = broker.replicas.offset_for_leader_epoch(&EpochQuery {
                topic: &topic.topic.0,
                partition: partition.partition,
                origin,
                current_leader_epoch: partition.current_leader_epoch,
                leader_epoch: partition.leader_epoch,
            });
            let mut p = EpochEndOffset::default();
            p.partition = partition.partition;
            p.error_code = count_error("OffsetForLeaderEpoch", answer.error);
            p.leader_epoch = answer.leader_epoch;
            p.end_offset = answer.end_offset;
            result.partitions.push(p);
        }
        result.topic = topic.topic;
        response.topics.push(result);
    }
    response
}
