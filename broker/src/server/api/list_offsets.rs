//! ListOffsets: earliest (-2), latest (-1) and first offset at or after a timestamp.
//!
//! Who asks decides which replica answers and what "latest" means:
//! - a consumer (replica id -1, and any id but -2) is answered by the partition leader
//!   only (NOT_LEADER_OR_FOLLOWER elsewhere); latest is the high watermark and timestamp
//!   lookups stop below it;
//! - the debugging replica id (-2, Kafka's `DEBUGGING_REPLICA_ID`, which tools use to read
//!   one replica's log) is answered by any replica, leader or follower, from its local log
//!   without a leader check; latest is that replica's log end offset and timestamp lookups
//!   stop below it, as Kafka answers it (no isolation for a non-consumer replica id). Kafka
//!   also answers broker replica ids (>= 0) with the log end offset; no Sluice broker sends
//!   ListOffsets, so those keep the consumer's answer.
//!
//! Max-timestamp lookups (-3, KIP-734) are not supported yet and get UNSUPPORTED_VERSION for
//! that partition.

use std::sync::Arc;

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use sluice_protocol::api::DEBUGGING_REPLICA_ID;
use sluice_protocol::error::ErrorCode;

use super::{check_leader_epoch, count_error};
use crate::replica::Replica;
use crate::server::{storage_error_code, Broker};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

pub fn handle(broker: &Broker, request: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let replica_id = request.replica_id.0;
    let mut response = ListOffsetsResponse::default();
    for topic in request.topics {
        let mut topic_response = ListOffsetsTopicResponse::default();
        topic_response.name = topic.name.clone();
        for partition in topic.partitions {
            let mut p = ListOffsetsPartitionResponse::default();
            p.partition_index = partition.partition_index;
            p.timestamp = -1;
            p.offset = -1;
            let replica = match answering_replica(
                broker,
                replica_id,
                &topic.name.0,
                partition.partition_index,
            ) {
                Ok(replica) => replica,
                Err(code) => {
                    p.error_code = count_error("ListOffsets", code);
                    topic_response.partitions.push(p);
                    continue;
                }
            };
            let leader_epoch = replica.lock().leader_epoch();
            if version >= 4 {
                p.leader_epoch = leader_epoch;
                if let Err(code) = check_leader_epoch(partition.current_leader_epoch, leader_epoch)
                {
                    p.error_code = count_error("ListOffsets", code);
                    topic_response.partitions.push(p);
                    continue;
                }
            }
            let log = &replica.log;
            // Consumers see the log below the high watermark; a debugging tool all of it.
            let end = if replica_id == DEBUGGING_REPLICA_ID {
                log.log_end_offset()
            } else {
                replica.visible_end()
            };
            match partition.timestamp {
                LATEST => p.offset = end,
                EARLIEST => p.offset = log.log_start_offset(),
                timestamp if timestamp >= 0 => match log.offset_for_timestamp(timestamp) {
                    Ok(Some((offset, found))) if offset < end => {
                        p.offset = offset;
                        p.timestamp = found;
                    }
                    Ok(_) => {}
                    Err(e) => p.error_code = count_error("ListOffsets", storage_error_code(&e)),
                },
                _ => p.error_code = count_error("ListOffsets", ErrorCode::UnsupportedVersion),
            }
            topic_response.partitions.push(p);
        }
        response.topics.push(topic_response);
    }
    response
}

/// The replica that answers for a partition: any hosted replica for the debugging replica
/// id, the leader for everyone else; or the error to answer with.
fn answering_replica(
    broker: &Broker,
    replica_id: i32,
    topic: &str,
    partition: i32,
) -> Result<Arc<Replica>, ErrorCode> {
    if replica_id != DEBUGGING_REPLICA_ID {
        return broker.leader_replica(topic, partition);
    }
    match broker.replicas.replica(topic, partition) {
        Some(replica) => Ok(replica),
        // Not hosted here: what a leader lookup says (not the leader, or no such partition).
        None => broker.leader_replica(topic, partition),
    }
}
