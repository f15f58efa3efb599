//! ListOffsets: decode, answer each partition through the replica manager
//! ([`ReplicaManager::list_offset`](crate::replica::ReplicaManager::list_offset): earliest,
//! latest, by timestamp, and which replica answers for whom), encode.
//!
//! The leader epoch goes into the response from v4, the version that has the field.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::count_error;
use crate::replica::{OffsetOrigin, OffsetQuery};
use crate::server::Broker;

pub fn handle(broker: &Broker, request: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let origin = OffsetOrigin::from_replica_id(request.replica_id.0);
    let mut response = ListOffsetsResponse::default();
    for topic in request.topics {
        let mut topic_response = ListOffsetsTopicResponse::default();
        for partition in topic.partitions {
            let answer = broker.replicas.list_offset(&OffsetQuery {
                topic: &topic.name.0,
                partition: partition.partition_index,
                origin,
                // Decoded as -1 (not given) below v4, which has no such field.
                current_leader_epoch: partition.current_leader_epoch,
                timestamp: partition.timestamp,
            });
            let mut p = ListOffsetsPartitionResponse::default();
            p.partition_index = partition.partition_index;
            p.error_code = count_error("ListOffsets", answer.error);
            p.offset = answer.offset;
            p.timestamp = answer.timestamp;
            if version >= 4 {
                p.leader_epoch = answer.leader_epoch;
            }
            topic_response.partitions.push(p);
        }
        topic_response.name = topic.name;
        response.topics.push(topic_response);
    }
    response
}
